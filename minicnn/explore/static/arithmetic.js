// minicnn explore: how the selected unit's number is computed (CNN Explainer's view), from
// GET /api/arithmetic. Every number comes from the server, next to the engine's own value.
"use strict";

window.arith = (() => {
  const a = {pos: null};
  const KINDS = ["Conv2d", "MaxPool2d", "Linear"];
  const num = (v) => (Math.abs(v) >= 100 || (v !== 0 && Math.abs(v) < 0.001)) ? v.toExponential(2)
    : v.toFixed(3);

  function table(rows, win) {
    return element("table", {}, ...rows.map((row, r) => element("tr", {}, ...row.map((v, c) => {
      const td = element("td", {textContent: num(v)});
      if (win && win[0] === r && win[1] === c) td.className = "win";
      return td;
    }))));
  }

  function value(label, v, extra) {
    const span = element("span", {textContent: `${label} ${num(v)}${extra || ""}`});
    span.dataset.value = v;
    return span;
  }

  function draw(r) {
    const box = $("arith");
    const head = [element("div", {className: "code", textContent: r.code}),
                  element("div", {className: "formula", textContent: r.formula})];
    const check = element("span", {className: r.matches ? "ok" : "bad",
      textContent: r.matches ? " = the engine's value ✓" : " ≠ the engine's (this layer's input is not the previous layer's output)"});
    let body = [];
    if (r.kind === "conv") {
      body.push(element("div", {textContent: `unit ${r.unit} at (${r.i}, ${r.j}): window at (${r.origin.join(", ")}) of the input, ` +
        `${r.kernel.join("×")} kernel, stride ${r.stride.join("×")}, padding ${r.padding.join("×")}; ` +
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
      if (r.relu) {
        const relu = value(`${r.relu.layer}: relu(y) = max(y, 0) =`, r.relu.value);
        relu.id = "arith-relu";
        body.push(element("div", {className: "total"}, element("span", {className: "code", textContent: `${r.relu.code} · `}), relu));
      }
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
      body.push(element("div", {className: "total"}, eng));
    }
    if (r.backward) body.push(...drawBackward(r.backward));
    box.replaceChildren(...head, ...body);
    box.dataset.key = `${r.layer}/${r.unit}/${r.i === undefined ? 0 : r.i}/${r.j === undefined ? 0 : r.j}`;
    box.dataset.rule = r.backward ? r.backward.rule : "";
  }

  // the backward at the same unit: the gradient arriving, what the rule lets through, and
  // this unit's share of the gradient at each position of its window (g · w[f])
  function drawBackward(b) {
    const out = [element("h4", {textContent: `Backward: ∂(score of ${state.info.labels[b.target]})/∂ at this unit, ${b.rule} rule`}),
                 element("div", {className: "code", textContent: b.code_rule}),
                 element("div", {className: "formula", textContent: b.formula_rule})];
    const g = value(`arriving at ${b.relu}: g =`, b.g);
    g.id = "arith-g";
    const through = value("let through to the conv's output:", b.through);
    through.id = "arith-through";
    out.push(element("div", {className: "total"}, g, ` · y ${b.y_positive ? ">" : "≤"} 0 · g ${b.g_positive ? ">" : "≤"} 0 → ` +
      (b.passes ? "passes" : "blocked")), element("div", {className: "total"}, through));
    out.push(element("div", {className: "code", textContent: b.code}),
             element("div", {className: "formula", textContent: b.formula}));
    out.push(element("div", {className: "channels"}, ...b.channels.map((c, k) =>
      element("div", {className: "channel"}, element("div", {textContent: `to channel ${c}: g·w`}),
              table(b.to_input[k])))));
    return out;
  }

  async function show(pos) {
    if (!state.unit) return;
    const {layer, unit} = state.unit;
    const info = state.info.layers.find((l) => l.name === layer);
    const panel = $("arith-panel");
    if (!info || !KINDS.includes(info.type)) { panel.hidden = true; return; }
    panel.hidden = false;
    const current = ticket("arith");
    const q = {layer, unit, target: $("class-select").value, rule: $("rule").value};
    if (pos) Object.assign(q, {i: pos[0], j: pos[1]});
    else if (a.pos && a.layer === `${layer}/${unit}`) Object.assign(q, {i: a.pos[0], j: a.pos[1]});
    else a.pos = null;
    a.layer = `${layer}/${unit}`;
    const r = await busy(panel, api(() => `/api/arithmetic?${new URLSearchParams({input: state.input, ...q})}`));
    if (current()) draw(r);
  }

  // hovering the activation map moves the window to the position under the mouse
  window.addEventListener("DOMContentLoaded", () => {
    $("unit-activation").addEventListener("mousemove", (e) => {
      if (!state.unit) return;
      const info = state.info.layers.find((l) => l.name === state.unit.layer);
      if (!info || info.shape.length !== 3 || !KINDS.includes(info.type)) return;
      const rect = e.target.getBoundingClientRect();
      const i = Math.min(info.shape[1] - 1, Math.floor((e.clientY - rect.top) / rect.height * info.shape[1]));
      const j = Math.min(info.shape[2] - 1, Math.floor((e.clientX - rect.left) / rect.width * info.shape[2]));
      if (a.pos && a.pos[0] === i && a.pos[1] === j) return;
      a.pos = [i, j];
      show([i, j]).catch(() => {});
    });
  });

  return {show: () => show(null), at: show};
})();
