// minicnn explore: the page. Every picture comes from the server as a PNG data URL;
// this file only asks for them and lays them out (no framework, no build step).
// train.js draws the Train tab.
"use strict";

const $ = (id) => document.getElementById(id);
// each tab of the browser is its own session on the server: its own inputs
const SESSION = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
  : `s${Date.now()}${Math.random().toString(36).slice(2)}`;
const BUSY_AFTER_MS = 300;          // a panel waiting longer than this shows a busy sign
const state = {info: null, input: null, inputRequest: null, unit: null, webcam: null,
               frames: 0, t0: 0, explained: null, seq: {}, down: null, resend: null};

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() { $("error").hidden = true; }

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// the server stopped answering: one loop for the whole page polls it with a growing pause
// (0.5 s, 1 s, 2 s ... at most 8 s) and shows a notice; every request waiting on it resumes
// when the server is back
function serverDown() {
  if (state.down) return state.down;
  state.down = (async () => {
    const notice = $("down");
    notice.hidden = false;
    for (let wait = 500; ; wait = Math.min(2 * wait, 8000)) {
      for (let left = wait; left > 0; left -= 500) {
        notice.textContent = `The server stopped answering (is \`minicnn explore\` still running?) ` +
          `· trying again in ${Math.ceil(left / 1000)} s`;
        await sleep(Math.min(500, left));
      }
      try {
        const r = await fetch("/api/progress", {headers: {"X-Minicnn-Session": SESSION}});
        if (r.ok) break;
      } catch (err) { /* still down */ }
    }
    notice.hidden = true;
    state.down = null;
  })();
  return state.down;
}

// the server no longer keeps this tab's input (it restarted, or the tab was idle long):
// send the image again, once for every request that found it gone
function resendInput() {
  if (!state.resend) {
    state.resend = api("/api/input", state.inputRequest, {resend: false})
      .then((view) => { state.input = view.input; showView(view); return view.input; })
      .finally(() => { state.resend = null; });
  }
  return state.resend;
}

// fetch JSON; a failed request shows its message on the page and rejects. The path may be
// a function of the current input id, so a request can be repeated after the input was re-sent.
async function api(path, options, {resend = true} = {}) {
  options = options || {};
  const headers = Object.assign({"X-Minicnn-Session": SESSION}, options.headers || {});
  for (let attempt = 0; ; attempt++) {
    const url = typeof path === "function" ? path() : path;
    let response;
    try {
      response = await fetch(url, Object.assign({}, options, {headers}));
    } catch (err) {
      await serverDown();
      continue;
    }
    const body = await response.json().catch(() => ({error: `${response.status} ${response.statusText}`}));
    if (response.status === 410 && body.gone && resend && attempt < 2 && state.inputRequest) {
      await resendInput();
      continue;
    }
    if (!response.ok) {
      showError(body.error || `${response.status} ${response.statusText}`);
      throw new Error(body.error);
    }
    return body;
  }
}

// run a request for one panel: a busy sign on it while it takes longer than BUSY_AFTER_MS
async function busy(panel, promise) {
  const timer = setTimeout(() => panel.classList.add("busy"), BUSY_AFTER_MS);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
    panel.classList.remove("busy");
  }
}

// a newer request for the same view makes older answers stale: draw only the latest
function ticket(view) {
  state.seq[view] = (state.seq[view] || 0) + 1;
  const mine = state.seq[view];
  return () => state.seq[view] === mine;
}

function element(tag, attrs, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, attrs || {});
  for (const c of children) e.append(c);
  return e;
}

const fmt = (v) => (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01)) ? v.toExponential(1)
  : v.toPrecision(2);

// a colour bar under a map: the colours the picture uses and the values at both ends
function colourBar(bar) {
  const strip = element("div", {className: `strip ${bar.kind}`});
  return element("div", {className: "colourbar", title: bar.label},
    strip, element("span", {className: "lo", textContent: fmt(bar.lo)}),
    element("span", {className: "label", textContent: bar.label}),
    element("span", {className: "hi", textContent: fmt(bar.hi)}));
}

function setBar(id, bar) {
  const box = $(id);
  if (bar) box.replaceChildren(colourBar(bar));
  else box.replaceChildren();
}

// a mosaic image scaled by an integer factor so tiles stay crisp
function mosaicImage(url, geometry, maxWidth) {
  const img = element("img", {src: url, className: "mosaic"});
  const width = geometry.cols * (geometry.tile[1] + geometry.gap) + geometry.gap;
  const scale = Math.max(1, Math.min(8, Math.floor(maxWidth / width)));
  img.style.width = `${Math.min(width * scale, maxWidth)}px`;
  return img;
}

// which tile of a mosaic a mouse event fell on, or -1
function tileAt(event, img, g) {
  const rect = img.getBoundingClientRect();
  const x = (event.clientX - rect.left) * img.naturalWidth / rect.width;
  const y = (event.clientY - rect.top) * img.naturalHeight / rect.height;
  const col = Math.floor((x - g.gap / 2) / (g.tile[1] + g.gap));
  const row = Math.floor((y - g.gap / 2) / (g.tile[0] + g.gap));
  const k = row * g.cols + col;
  return col >= 0 && col < g.cols && row >= 0 && k < g.count ? k : -1;
}

// one selection on the page: the mark of the selected tile, every other mark removed
function markTile(wrap, img, g, k) {
  document.querySelectorAll("#layers .mark").forEach((m) => m.remove());
  if (k < 0) return;
  const s = img.getBoundingClientRect().width / img.naturalWidth;
  const row = Math.floor(k / g.cols), col = k % g.cols;
  const mark = element("div", {className: "mark"});
  Object.assign(mark.style, {left: `${(g.gap + col * (g.tile[1] + g.gap)) * s - 1}px`,
                             top: `${(g.gap + row * (g.tile[0] + g.gap)) * s - 1}px`,
                             width: `${g.tile[1] * s}px`, height: `${g.tile[0] * s}px`});
  wrap.append(mark);
}

const isOutput = (layer) => layer.shape.length === 1 && layer.shape[0] === state.info.classes;
const unitName = (layer, unit) => {
  const info = state.info.layers.find((l) => l.name === layer);
  return info && isOutput(info) ? ` (${state.info.labels[unit]})` : "";
};

// ------------------------------------------------------------------ the input
// a new input: the activations, then every view that depends on the input
async function setInput(request) {
  const view = await busy($("input-panel"), api("/api/input", request, {resend: false}));
  clearError();
  state.inputRequest = request;
  state.input = view.input;
  showView(view);
  await refreshDependents();
  return view;
}

// the unit's views are awaited (a webcam frame waits for them: DeepVis' live unit); the class
// maps are redrawn alongside, not awaited, so slow maps do not hold the next frame back
async function refreshDependents() {
  if (state.explained !== null) explainClass(true).catch(() => {});
  const jobs = [];
  if (state.unit) jobs.push(showUnit());
  if (state.unit && window.arith) jobs.push(window.arith.show());
  await Promise.all(jobs);
}

function showView(view) {
  $("input-image").src = view.image;
  $("prediction").replaceChildren(...view.top5.map((p) => element("li", {
    textContent: `${p.label} ${(100 * p.prob).toFixed(1)}%`})));
  if ($("class-select").dataset.user !== "1") $("class-select").value = view.top5[0].class;
  const layers = $("layers");
  const old = new Map([...layers.children].map((f) => [f.dataset.layer, f]));
  for (const layer of view.layers) {
    let fig = old.get(layer.name);
    if (!fig) {
      fig = element("figure", {className: "layer"});
      fig.dataset.layer = layer.name;
      const caption = element("figcaption", {
        textContent: `${layer.name} · ${layer.type} · ${layer.shape.join("×")}`});
      fig.append(element("div", {className: "wrap"}), caption);
      layers.append(fig);
    }
    const wrap = fig.querySelector(".wrap");
    let img = wrap.querySelector("img");
    if (!img) {
      img = mosaicImage(layer.mosaic, layer, 250);
      img.addEventListener("click", (e) => {
        const k = tileAt(e, img, img.geometry);
        if (k >= 0) selectUnit(fig.dataset.layer, k).catch(() => {});
      });
      img.addEventListener("mousemove", (e) => {
        const k = tileAt(e, img, img.geometry);
        img.title = k < 0 ? "" : `${fig.dataset.layer}, unit ${k}${unitName(fig.dataset.layer, k)}`;
      });
      wrap.append(img);
      if (isOutput(layer)) {
        fig.append(element("div", {className: "labels", textContent: state.info.labels
          .map((l, k) => `${k}: ${l}`).join(" · ")}));
      }
    } else {
      img.src = layer.mosaic;
    }
    img.geometry = layer;
    img.dataset.layer = layer.name;
  }
  if (state.unit) {
    const fig = [...layers.children].find((f) => f.dataset.layer === state.unit.layer);
    const img = fig.querySelector("img");
    markTile(fig.querySelector(".wrap"), img, img.geometry, state.unit.unit);
  }
}

// ------------------------------------------------------------------ one unit
async function selectUnit(layer, unit) {
  if (!state.input) return;
  state.unit = {layer, unit};
  const fig = [...$("layers").children].find((f) => f.dataset.layer === layer);
  const img = fig.querySelector("img");
  markTile(fig.querySelector(".wrap"), img, img.geometry, unit);
  $("unit-title").textContent = `Unit: ${layer}, channel ${unit}${unitName(layer, unit)}`;
  $("unit-hint").hidden = true;
  $("neuron-button").disabled = false;
  $("unit-neuron").removeAttribute("src");
  await Promise.all([showUnit(), showTop(), window.arith ? window.arith.show() : null]);
}

async function showUnit() {
  const {layer, unit} = state.unit;
  const rule = $("rule").value;
  const current = ticket("unit");
  const t = performance.now();
  const r = await busy($("unit-pair"), api(() =>
    `/api/unit?${new URLSearchParams({input: state.input, layer, unit, rule})}`));
  if (!current()) return;                         // a newer click or input is on its way
  const activation = $("unit-activation");
  if (r.activation) {
    activation.src = r.activation;
    $("unit-value").hidden = true;
  } else {                                        // a dense unit: one number, no map
    activation.removeAttribute("src");
    $("unit-value").hidden = false;
    $("unit-value").textContent = `activation ${r.value.toPrecision(4)}` +
      (r.label ? ` (class ${r.label})` : "");
  }
  activation.dataset.input = r.input;
  setBar("bar-activation", r.activation_bar);
  $("unit-projection").src = r.projection;
  $("unit-projection").dataset.key = `${r.layer}/${r.unit}/${r.rule}`;
  $("unit-projection").dataset.input = r.input;
  setBar("bar-projection", r.projection_bar);
  $("projection-caption").textContent =
    `projection, ${r.rule} rule${r.empty ? " (all zero)" : ""} · ${Math.round(performance.now() - t)} ms`;
  $("rule-note").textContent = r.note || "";
  $("rule-note").hidden = !r.note;
}

async function showTop() {
  const {layer, unit} = state.unit;
  const rule = $("rule").value;
  const current = ticket("top");
  const r = await busy($("unit-top-panel"),
                       api(`/api/top?${new URLSearchParams({layer, unit, rule})}`));
  if (!current()) return;
  const box = $("unit-top");
  if (r.images === null) {
    $("unit-top-status").textContent = r.status.error ||
      `computing over ${r.status.dataset}: ${Math.round(100 * r.status.progress)}%`;
    box.replaceChildren();
    setTimeout(() => { if (current()) showTop().catch(() => {}); }, 1000);
    return;
  }
  $("unit-top-status").textContent = `over ${r.status.dataset}` +
    (r.status.size < 50 ? ` — only ${r.status.size} images: give --images DIR for more` : "");
  box.replaceChildren(...r.images.map((url, i) => element("img", {src: url, title: `image ${r.indices[i]}`})));
  const proj = $("unit-top-projections");
  proj.replaceChildren(...(r.projections || []).map((url, i) =>
    element("img", {src: url, title: `image ${r.indices[i]}, ${r.rule} rule`})));
  $("top-projection-caption").textContent = r.projections ?
    `projections of the unit on each, ${r.rule} rule (DeepVis' deconv of the top 9)` : "";
}

async function showNeuron() {
  const {layer, unit} = state.unit;
  $("neuron-button").disabled = true;
  $("neuron-button").textContent = "computing…";
  try {
    const r = await busy($("neuron-figure"), api(`/api/neuron?${new URLSearchParams({layer, unit})}`));
    if (state.unit.layer === layer && state.unit.unit === unit) $("unit-neuron").src = r.image;
  } finally {
    $("neuron-button").disabled = false;
    $("neuron-button").textContent = "Visualize this unit";
  }
}

// ------------------------------------------------------------------ one class
// each class map is drawn as soon as it is ready, each figure with its own busy sign;
// a new input redraws them (when a redraw is already running, once more after it)
async function explainClass(again = false) {
  if (!state.input) return;
  if (again && state.explaining) { state.explainAgain = true; return; }
  const target = $("class-select").value;
  state.explained = target;
  state.explaining = true;
  try {
    do {
      state.explainAgain = false;
      const jobs = state.info.methods.map(async (method) => {
        const current = ticket(`class-${method}`);
        const r = await busy($(`map-${method}`).parentElement, api(() =>
          `/api/class?${new URLSearchParams({input: state.input, target, method})}`));
        if (!current()) return;
        $(`map-${method}`).src = r.image;
        $(`map-${method}`).dataset.input = r.input;
        setBar(`bar-${method}`, r.bar);
        if (r.caption) $(`caption-${method}`).textContent = r.caption;   // says the settings
      });
      jobs.push(showGradients(target));
      await Promise.all(jobs);
    } while (state.explainAgain);
  } finally {
    state.explaining = false;
  }
}

async function showGradients(target) {
  const current = ticket("gradients");
  const r = await busy($("gradients-panel"),
                       api(() => `/api/gradients?${new URLSearchParams({input: state.input, target})}`));
  if (!current()) return;
  $("gradients").replaceChildren(...r.layers.map((l) => element("figure", {className: "layer"},
    mosaicImage(l.image, l, 260), element("figcaption", {textContent: `${l.name} ‖g‖ = ${l.norm.toPrecision(3)}`}))));
}

async function showWeights() {
  const r = await busy($("weights-panel"), api("/api/weights"));
  $("weights").replaceChildren(...r.layers.map((l) => element("figure", {className: "layer"},
    mosaicImage(l.image, l, 300),
    element("figcaption", {textContent: `${l.name} ${l.shape.join("×")} · mean |w| ${l.mean_abs.toPrecision(3)} · ${l.note}`}))));
}

// ------------------------------------------------------------------ webcam
async function toggleWebcam() {
  if (state.webcam) {
    state.webcam.getTracks().forEach((t) => t.stop());
    state.webcam = null;
    $("video").hidden = true;
    $("webcam").textContent = "Start webcam";
    return;
  }
  try {
    state.webcam = await navigator.mediaDevices.getUserMedia({video: true});
  } catch (err) {
    showError(`webcam: ${err.name}: ${err.message}`);
    return;
  }
  const video = $("video");
  video.srcObject = state.webcam;
  video.hidden = false;
  await video.play().catch((err) => showError(`webcam: the video does not play (${err.message})`));
  $("webcam").textContent = "Stop webcam";
  state.frames = 0;
  state.t0 = performance.now();
  nextFrame();
}

// send a frame, wait for its answer and the selected unit's views on it (DeepVis' live
// view), then send the next: the rate the server keeps up with
async function nextFrame() {
  if (!state.webcam) return;
  const video = $("video");
  if (video.readyState < 2) { setTimeout(nextFrame, 50); return; }
  const side = Math.min(video.videoWidth, video.videoHeight);
  const out = Math.max(64, Math.min(256, 2 * Math.max(...state.info.size)));
  const canvas = element("canvas", {width: out, height: out});
  canvas.getContext("2d").drawImage(video, (video.videoWidth - side) / 2,
                                    (video.videoHeight - side) / 2, side, side, 0, 0, out, out);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  let pause = 0;
  try {
    await setInput({method: "POST", body: blob, headers: {"Content-Type": "image/jpeg"}});
    state.frames += 1;
    const fps = state.frames / ((performance.now() - state.t0) / 1000);
    $("frames").textContent = `webcam: ${state.frames} frames, ${fps.toFixed(1)} frames/s`;
  } catch (err) {
    pause = 1000;         // the error is on the page; try the next frame a second later
  }
  setTimeout(nextFrame, pause);
}

// ------------------------------------------------------------------ tabs
function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
  if (name === "train" && window.train) window.train.open();
}

// ------------------------------------------------------------------ start
async function start() {
  const info = await api("/api/info");
  state.info = info;
  $("model-name").textContent = `· ${info.model}`;
  $("samples").replaceChildren(...info.samples.map((url, k) => {
    const img = element("img", {src: url, className: "sample", title: `sample ${k}`});
    img.dataset.sample = k;
    img.addEventListener("click", () => setInput({method: "POST", headers: {"Content-Type": "application/json"},
                                                  body: JSON.stringify({sample: k})}).catch(() => {}));
    return img;
  }));
  $("class-select").replaceChildren(...info.labels.map((label, k) =>
    element("option", {value: k, textContent: `${k}: ${label}`})));
  $("class-select").addEventListener("change", () => { $("class-select").dataset.user = "1"; });
  $("rule").value = info.default_rule;
  for (const [rule, note] of Object.entries(info.rule_notes)) {
    const option = $("rule").querySelector(`option[value='${rule}']`);
    if (!option) continue;
    option.textContent += " — shows little here";
    option.title = note;
  }
  $("upload").addEventListener("change", async () => {
    const file = $("upload").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("image", file);
    await setInput({method: "POST", body: form}).catch(() => {});
    $("upload").value = "";
  });
  $("rule").addEventListener("change", () => {
    if (state.unit) Promise.all([showUnit(), showTop(), window.arith.show()]).catch(() => {});
  });
  $("neuron-button").addEventListener("click", () => showNeuron().catch(() => {}));
  $("class-button").addEventListener("click", () => explainClass().catch(() => {}));
  $("webcam").addEventListener("click", () => toggleWebcam().catch(() => {}));
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  pollTop();
  showWeights().catch(() => {});
  // the first page is not empty: the first sample, and a hint of what to click
  if (info.samples.length) {
    await setInput({method: "POST", headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({sample: 0})}).catch(() => {});
  }
}

async function pollTop() {
  const s = await api("/api/progress").catch(() => null);
  if (!s) return;
  $("top-progress").value = s.progress;
  $("top-text").textContent = s.error ? `top images failed: ${s.error}` :
    s.progress < 1 ? `top images: ${Math.round(100 * s.progress)}% of ${s.size}` : `top images over ${s.dataset}`;
  if (s.progress < 1 && !s.error) setTimeout(pollTop, 1000);
  else $("top-progress").hidden = true;
}

window.addEventListener("DOMContentLoaded", () => start().catch(() => {}));
