// minicnn explore: the Train tab (ConvNetJS' live training). The server trains in a
// background thread; this tab polls GET /api/train twice a second and draws the curves
// (from the numbers) and the pictures (PNGs, fetched only when newer).
"use strict";

window.train = (() => {
  const t = {version: -1, polling: false, networks: null, last: null};

  function control(action) {
    const body = {action, network: $("train-model").value,
                  lr: Number($("train-lr").value), batch_size: Number($("train-batch").value)};
    return api("/api/train", {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify(body)})
      .then((r) => { clearError(); show(r); return r; });
  }

  // a curve plot: train as a thin line (smoothed), held-out as dots joined
  function plot(canvas, curves, key, yMax) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, L = 36, B = 18;
    ctx.clearRect(0, 0, W, H);
    const tr = curves.train, te = curves.test;
    const steps = Math.max(1, ...tr.step, ...te.step);
    const top = yMax || Math.max(1e-6, ...tr[key], ...te[key]);
    const x = (s) => L + (W - L - 6) * s / steps, y = (v) => H - B - (H - B - 6) * Math.min(v, top) / top;
    ctx.strokeStyle = "#bbb"; ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
    ctx.beginPath(); ctx.moveTo(L, 4); ctx.lineTo(L, H - B); ctx.lineTo(W - 4, H - B); ctx.stroke();
    for (const f of [0, 0.5, 1]) ctx.fillText((f * top).toPrecision(2), 2, y(f * top) + 3);
    ctx.fillText(`step ${steps}`, W - 60, H - 4);
    const line = (xs, ys, colour, width) => {
      ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.beginPath();
      xs.forEach((s, i) => (i ? ctx.lineTo(x(s), y(ys[i])) : ctx.moveTo(x(s), y(ys[i]))));
      ctx.stroke(); ctx.lineWidth = 1;
    };
    const smooth = [];                                   // running mean of train, as ConvNetJS
    tr[key].forEach((v, i) => smooth.push(i ? 0.9 * smooth[i - 1] + 0.1 * v : v));
    line(tr.step, tr[key], "#90caf9", 1);
    line(tr.step, smooth, "#1565c0", 2);
    line(te.step, te[key], "#e65100", 2);
    ctx.fillStyle = "#1565c0"; ctx.fillText("train", W - 90, 14);
    ctx.fillStyle = "#e65100"; ctx.fillText("held-out", W - 55, 14);
  }

  function figures(box, layers, width, caption) {
    box.replaceChildren(...layers.map((l) => element("figure", {className: "layer"},
      mosaicImage(l.image, l, width), element("figcaption", {textContent: caption(l)}))));
  }

  function show(r) {
    t.last = r;
    if (r.networks && !t.networks) {
      t.networks = r.networks;
      $("train-lr").value = r.lr;
      $("train-batch").value = r.batch_size;
      $("train-model").replaceChildren(...Object.entries(r.networks).map(([name, n]) =>
        element("option", {value: name, disabled: !n.ok,
                           textContent: n.ok ? `${name} (${n.dataset})` : `${name} — ${n.dataset} not installed`})));
    }
    $("train-model").value = r.network;
    const running = r.status === "running";
    $("train-start").disabled = running;
    $("train-pause").disabled = !running;
    $("train-save").disabled = r.step === 0;
    const te = r.curves.test, tr = r.curves.train;
    const last = (a) => a.length ? a[a.length - 1] : null;
    $("train-status").textContent = `${r.status} · step ${r.step} · lr ${r.lr} · batch ${r.batch_size}` +
      (last(te.acc) !== null ? ` · held-out accuracy ${(100 * last(te.acc)).toFixed(1)}%` : "") +
      (last(tr.loss) !== null ? ` · loss ${last(tr.loss).toFixed(3)}` : "") +
      (r.error ? ` · ${r.error}` : "");
    $("train-status").dataset.step = r.step;
    if (r.saved.length) $("train-saved").textContent = `saved: ${r.saved.join(", ")} (in the cache's ` +
      `explore/runs folder; explore one with \`minicnn explore --weights FILE\`)`;
    plot($("train-loss"), r.curves, "loss", 0);
    plot($("train-acc"), r.curves, "acc", 1);
    if (r.step === 0) {                                  // a fresh network: nothing drawn yet
      for (const id of ["train-acts", "train-grads", "train-wrong"]) $(id).replaceChildren();
      $("train-filters").removeAttribute("src");
    }
    if (r.pictures) {
      t.version = r.version;
      const p = r.pictures;
      const f = $("train-filters");
      f.src = p.filters.image;
      f.dataset.version = r.version;
      f.style.width = `${Math.min(300, 6 * (p.filters.cols * (p.filters.tile[1] + 1) + 1))}px`;
      $("train-test-label").textContent = `(a ${p.test_label})`;
      figures($("train-acts"), p.activations, 200, (l) => `${l.name} · ${l.count} ch`);
      figures($("train-grads"), p.gradients, 200, (l) => `${l.name} ‖g‖ = ${l.norm.toPrecision(3)}`);
      $("train-wrong").replaceChildren(...p.wrong.map((w) => element("figure", {},
        element("img", {src: w.image}),
        element("figcaption", {textContent: `${w.label} → ${w.guess} ${(100 * w.prob).toFixed(0)}%`}))));
    }
  }

  async function poll() {
    if (t.polling) return;
    t.polling = true;
    try {
      while (!$("tab-train").hidden) {
        const r = await api(`/api/train?version=${t.version}`);
        show(r);
        await sleep(r.status === "running" ? 500 : 2000);
      }
    } finally {
      t.polling = false;
    }
  }

  window.addEventListener("DOMContentLoaded", () => {
    const run = (action) => () => control(action).catch(() => {});
    $("train-start").addEventListener("click", run("start"));
    $("train-pause").addEventListener("click", run("pause"));
    $("train-reset").addEventListener("click", () => { t.version = -1; run("reset")(); });
    $("train-save").addEventListener("click", run("save"));
    for (const id of ["train-lr", "train-batch"]) $(id).addEventListener("change", run("configure"));
    $("train-model").addEventListener("change", () => { t.version = -1; run("reset")(); });
  });

  return {open: () => { poll().catch(() => {}); }, state: t};
})();
