// minicnn explore: how the selected unit's number is computed (CNN Explainer's view), from
// GET /api/arithmetic. Every number comes from the server, next to the engine's own value.
"use strict";

window.arith = (() => {
  const a = {pos: null};
  const KINDS = ["Conv2d", "Conv2dSame", "MaxPool2d", "Linear"];
  const num = (v) => (Math.abs(v) >= 100 || (v !== 0 && Math.abs(v) < 0.001)) ? v.toExponential(2)
    : v.toFixed(3);

  function table(rows, win) {
    return element("table", {}, ...rows.map((row, r) => element("tr", {}, ...row.map((v, c) => {
      const td = element("td", {textContent: num(v)});
      if (win && win[0] === r && win[1] === c) td.className = "win";
      return td;
    }))));
  }

  // the function computing a step, its formula as its docstring writes it, how it reads here
  function code(c) {
    const out = [element("div", {className: "code", textContent: c.code}),
                 element("div", {className: "formula", textContent: c.formula})];
    if (c.here) out.push(element("div", {className: "here", textContent: c.here}));
    return out;
  }

  function value(label, v, extra) {
    const span = element("span", {textContent: `${label} ${num(v)}${extra || ""}`});
    span.dataset.value = v;
    return span;
  }

  // what follows the unit: a batch norm in eval mode (an affine map per channel), a ReLU or ReLU6
  function drawAfter(r) {
    const out = [];
    if (r.bn) {
      const z = value(`${r.bn.layer}: (y − ${num(r.bn.mean)}) / √(${num(r.bn.var)} + ${r.bn.eps}) · ${num(r.bn.gamma)} + ${num(r.bn.beta)} =`, r.bn.value);
      z.id = "arith-bn";
      const eng = value(" · engine:", r.bn.engine);
      eng.id = "arith-bn-engine";
      out.push(...code(r.bn), element("div", {className: "total"}, z, eng));
    }
    if (r.relu) {
      const f = r.relu.kind === "relu6" ? "relu6(z) = min(max(z, 0), 6)" : "relu(y) = max(y, 0)";
      const relu = value(`${r.relu.layer}: ${f} =`, r.relu.value);
      relu.id = "arith-relu";
      out.push(element("div", {className: "total"}, element("span", {className: "code", textContent: `${r.relu.code}: ${r.relu.formula} · `}), relu));
    }
    return out;
  }

  // the previous layer's maps with the unit's window on them (it moves as the mouse does)
  function drawMaps(r) {
    const [H, W] = r.map_shape;
    const size = r.kind === "conv" ? r.kernel : [r.window.length, r.window[0].length];
    const chans = r.kind === "conv" ? r.channels : [r.unit];
    return element("div", {className: "maps", id: "arith-maps"}, ...chans.map((c, k) => {
      const box = element("div", {className: "window"});
      Object.assign(box.style, {top: `${100 * r.origin[0] / H}%`, left: `${100 * r.origin[1] / W}%`,
                                height: `${100 * size[0] / H}%`, width: `${100 * size[1] / W}%`});
      box.dataset.origin = r.origin.join(",");
      box.dataset.size = size.join(",");
      return element("figure", {}, element("div", {className: "map"}, element("img", {src: r.maps[k], alt: ""}), box),
                     element("figcaption", {textContent: `${r.input_layer} [${c}]`}));
    }));
  }

  // the position computed, marked on the unit's activation map
  function mark(r) {
    const img = $("unit-activation");
    let here = $("arith-here");
    if (!here) {
      here = element("div", {id: "arith-here"});
      img.parentElement.style.position = "relative";
      img.after(here);
    }
    here.hidden = !r || r.i === undefined || !a.shape || a.shape.length !== 3 || !img.offsetWidth;
    if (here.hidden) return;
    const [, H, W] = a.shape;
    Object.assign(here.style, {left: `${img.offsetLeft + img.offsetWidth * r.j / W}px`,
      top: `${img.offsetTop + img.offsetHeight * r.i / H}px`,
      width: `${Math.max(3, img.offsetWidth / W)}px`, height: `${Math.max(3, img.offsetHeight / H)}px`});
  }

  function draw(r) {
    mark(r);
    const box = $("arith");
    const head = code(r);
    const check = element("span", {className: r.matches ? "ok" : "bad",
      textContent: r.matches ? " = the engine's value ✓" : " ≠ the engine's (this layer's input is not the previous layer's output)"});
    let body = [];
    if (r.kind === "conv") {
      body.push(element("div", {textContent: `unit ${r.unit} at (${r.i}, ${r.j}): window at (${r.origin.join(", ")}) of the input, ` +
        `${r.kernel.join("×")} kernel, stride ${r.stride.join("×")}, ` +
        (r.same ? `TensorFlow SAME padding (top ${r.padding[0]}, bottom ${r.padding_after[0]}, left ${r.padding[1]}, right ${r.padding_after[1]})` : `padding ${r.padding.join("×")}`) +
        (r.groups > 1 ? `, groups ${r.groups} (${r.in_channels} input channel${r.in_channels > 1 ? "s" : ""} per filter)` : "") + "; " +
        `${r.channels.length} of ${r.in_channels} input channels drawn, all summed`}));
      body.push(element("div", {className: "channels"}, ...r.channels.map((c, k) => {
        const sum = value("Σ =", r.channel_sums[k]);
        sum.className = "channel-sum";
        return element("div", {className: "channel"}, element("div", {textContent: `channel ${c}: x`}),
          table(r.windows[k]), element("div", {textContent: "w"}), table(r.weights[k]),
          element("div", {textContent: "x·w"}), table(r.products[k]), sum);
      })));
      const sums = r.channel_sums.reduce((s, v) => s + v, 0);
      const total = element("div", {className: "total"}, value("Σ over channels", sums), " + ",
        value("bias", r.bias), " = ", value("y", r.total), check);
      total.querySelectorAll("span")[2].id = "arith-total";
      body.push(total);
      const eng = value("engine:", r.engine);
      eng.id = "arith-engine";
      body.push(element("div", {className: "total"}, eng));
      body.push(...drawAfter(r));
    } else if (r.kind === "pool") {
      const win = [r.winner[0] - r.origin[0], r.winner[1] - r.origin[1]];
      body.push(element("div", {textContent: `channel ${r.unit} at (${r.i}, ${r.j}): the window at (${r.origin.join(", ")}) of the input`}),
        table(r.window, win));
      const total = element("div", {className: "total"}, value("max =", r.total, ` at (${r.winner.join(", ")}): switch ${r.switch}`), check);
      total.querySelector("span").id = "arith-total";
      body.push(total);
      const eng = value("engine:", r.engine);
      eng.id = "arith-engine";
      body.push(element("div", {className: "total"}, eng));
    } else {
      body.push(element("div", {textContent: `output ${r.unit}: the ${r.top.length} largest of ${r.inputs} products w·x`}));
      body.push(element("table", {}, element("tr", {}, ...["d", "x[d]", "W[k,d]", "product"].map((h) => element("td", {textContent: h}))),
        ...r.top.map((t) => element("tr", {}, element("td", {textContent: t.d}), element("td", {textContent: num(t.x)}),
                                    element("td", {textContent: num(t.w)}), element("td", {textContent: num(t.product)})))));
      const total = element("div", {className: "total"}, value("+ the other products", r.rest), " + ",
        value("bias", r.bias), " = ", value("y", r.total), check);
      total.querySelectorAll("span")[2].id = "arith-total";
      body.push(total);
      const eng = value("engine:", r.engine);
      eng.id = "arith-engine";
      body.push(element("div", {className: "total"}, eng), ...drawAfter(r));
    }
    if (r.maps) body.unshift(drawMaps(r));
    if (r.backward) body.push(...drawBackward(r.backward));
    box.replaceChildren(...head, ...body);
    box.dataset.key = `${r.layer}/${r.unit}/${r.i === undefined ? 0 : r.i}/${r.j === undefined ? 0 : r.j}`;
    box.dataset.rule = r.backward ? r.backward.rule : "";
  }

  // the backward at the same unit: the gradient arriving, what the rule lets through, and
  // where it goes: g · w[f] over a conv's window, the switch of a max-pool, Wᵀg of a linear
  function drawBackward(b) {
    const out = [element("h4", {textContent: `Backward: ∂(score of ${state.info.labels[b.target]})/∂ at this unit, ${b.rule} rule`})];
    const what = {conv: "the conv's output", pool: "the pool's output", linear: "the linear unit's output"}[b.kind];
    if (b.relu) {
      out.push(...code(b.relu_code), ...code(b.rule_code));
      const g = value(`arriving at ${b.relu}: g =`, b.g);
      g.id = "arith-g";
      const active = b.relu_kind === "relu6" ? (b.y_active ? "0 < y < 6" : "y outside (0, 6)") : (b.y_active ? "y > 0" : "y ≤ 0");
      out.push(element("div", {className: "total"}, g, ` · ${active} · g ${b.g_positive ? ">" : "≤"} 0 → ` +
        (b.passes ? "passes" : "blocked")));
      if (b.bn) out.push(element("div", {className: "total"}, value(`through ${b.bn.layer} (× its scale ${num(b.bn.scale)}): at its input`, b.bn.through)));
    } else {
      const g = value(b.last ? "arriving at this class score (1 at the target class, 0 at the others): g =" : "arriving at this unit's output: g =", b.g);
      g.id = "arith-g";
      out.push(element("div", {className: "total"}, g));
    }
    const through = value(`the gradient at ${what}:`, b.through);
    through.id = "arith-through";
    out.push(element("div", {className: "total"}, through),
             ...code(b));
    if (b.kind === "conv") {
      out.push(element("div", {className: "channels"}, ...b.channels.map((c, k) =>
        element("div", {className: "channel"}, element("div", {textContent: `to channel ${c}: g·w`}),
                table(b.to_input[k])))));
    } else if (b.kind === "pool") {
      const win = [b.winner[0] - b.origin[0], b.winner[1] - b.origin[1]];
      out.push(element("div", {className: "channels"},
        element("div", {className: "channel"}, element("div", {textContent: `to the window: all of g to the switch ${b.switch} at (${b.winner.join(", ")})`}),
                table(b.to_input, win)),
        element("div", {className: "channel"}, element("div", {textContent: "the engine's gradient there (windows sharing a pixel add up)"}),
                table(b.engine_input, win))));
    } else {
      const rows = b.top.map((t) => {
        const tr = element("tr", {}, ...[t.d, t.w, t.share, t.total, t.engine].map((v, c) =>
          element("td", {textContent: c ? num(v) : v})));
        tr.dataset.d = t.d; tr.dataset.total = t.total; tr.dataset.engine = t.engine; tr.dataset.share = t.share;
        return tr;
      });
      out.push(element("div", {textContent: `the ${b.top.length} of ${b.inputs} inputs receiving the largest gradient (${b.g_out_nonzero} units of this layer send one)`}),
        element("table", {id: "arith-back-top"}, element("tr", {}, ...["d", `W[${b.unit},d]`, "this unit: W·g", "Wᵀg (all units)", "engine"].map((h) =>
          element("td", {textContent: h}))), ...rows));
    }
    return out;
  }

  // a shown layer that is not itself a conv, pool or linear layer (a block, a batch norm, a
  // ReLU): the layers whose arithmetic explains it, one button each (EfficientNet's _blocks.0:
  // its depthwise and 1×1 convs; _stem_relu: _conv_stem)
  async function inside(layer) {
    if (a.inside && a.inside.layer === layer) return a.inside.layers;
    const r = await api(() => `/api/arithmetic/layers?${new URLSearchParams({input: state.input, layer})}`);
    a.inside = {layer, layers: r.layers};
    a.sub = r.layers.length ? r.layers[0].name : null;
    return r.layers;
  }

  function drawInside(layers) {
    const box = $("arith-layers");
    box.hidden = !layers;
    if (!layers) return;
    box.replaceChildren("computed in: ", ...layers.map((l) => {
      const b = element("button", {type: "button", textContent: `${l.name} (${l.type})`});
      b.dataset.layer = l.name;
      if (l.name === a.sub) b.className = "on";
      b.addEventListener("click", () => { a.sub = l.name; a.pos = null; show(null).catch(() => {}); });
      return b;
    }));
  }

  async function show(pos) {
    if (!state.unit) return;
    const {layer, unit} = state.unit;
    const info = state.info.layers.find((l) => l.name === layer);
    const panel = $("arith-panel");
    if (!info) { panel.hidden = true; mark(null); return; }
    const current = ticket("arith");
    let target = {layer, unit, shape: info.shape};
    if (!KINDS.includes(info.type)) {
      const layers = await inside(layer);
      if (!current()) return;
      if (!layers.length) { panel.hidden = true; mark(null); return; }
      const sub = layers.find((l) => l.name === a.sub) || layers[0];
      target = {layer: sub.name, unit: Math.min(unit, sub.shape[0] - 1), shape: sub.shape};
      drawInside(layers);
    } else drawInside(null);
    panel.hidden = false;
    a.shape = target.shape;
    const q = {layer: target.layer, unit: target.unit, target: $("class-select").value, rule: $("rule").value};
    const key = `${target.layer}/${target.unit}`;
    if (pos) Object.assign(q, {i: pos[0], j: pos[1]});
    else if (a.pos && a.layer === key) Object.assign(q, {i: a.pos[0], j: a.pos[1]});
    else a.pos = null;
    a.layer = key;
    const r = await busy(panel, api(() => `/api/arithmetic?${new URLSearchParams({input: state.input, ...q})}`));
    if (current()) draw(r);
  }

  // hovering the activation map moves the window to the position under the mouse (in the
  // layer computed: a layer inside a block may have another size than the block's output)
  window.addEventListener("DOMContentLoaded", () => {
    $("unit-activation").addEventListener("mousemove", (e) => {
      if (!state.unit || $("arith-panel").hidden || !a.shape || a.shape.length !== 3) return;
      const [, H, W] = a.shape;
      const rect = e.target.getBoundingClientRect();
      const i = Math.min(H - 1, Math.floor((e.clientY - rect.top) / rect.height * H));
      const j = Math.min(W - 1, Math.floor((e.clientX - rect.left) / rect.width * W));
      if (a.pos && a.pos[0] === i && a.pos[1] === j) return;
      a.pos = [i, j];
      show([i, j]).catch(() => {});
    });
  });

  return {show: () => show(null), at: show};
})();
