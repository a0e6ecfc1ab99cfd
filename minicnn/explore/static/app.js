// minicnn explore: the page. Every picture comes from the server as a PNG data URL;
// this file only asks for them and lays them out (no framework, no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {info: null, input: null, unit: null, webcam: null, frames: 0, t0: 0, requests: 0};

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() { $("error").hidden = true; }

// fetch JSON; a failed request shows its message on the page and rejects
async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    showError(`the server does not answer (${err.message})`);
    throw err;
  }
  const body = await response.json().catch(() => ({error: `${response.status} ${response.statusText}`}));
  if (!response.ok) {
    showError(body.error || `${response.status} ${response.statusText}`);
    throw new Error(body.error);
  }
  return body;
}

function element(tag, attrs, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, attrs || {});
  for (const c of children) e.append(c);
  return e;
}

// a mosaic image scaled by an integer factor so tiles stay crisp
function mosaicImage(url, geometry, maxWidth) {
  const img = element("img", {src: url, className: "mosaic"});
  const width = geometry.cols * (geometry.tile[1] + geometry.gap) + geometry.gap;
  const scale = Math.max(1, Math.min(8, Math.floor(maxWidth / width)));
  img.style.width = `${Math.min(width * scale, maxWidth)}px`;
  return img;
}

// which tile of a mosaic a click fell on, or -1
function tileAt(event, img, g) {
  const rect = img.getBoundingClientRect();
  const x = (event.clientX - rect.left) * img.naturalWidth / rect.width;
  const y = (event.clientY - rect.top) * img.naturalHeight / rect.height;
  const col = Math.floor((x - g.gap / 2) / (g.tile[1] + g.gap));
  const row = Math.floor((y - g.gap / 2) / (g.tile[0] + g.gap));
  const k = row * g.cols + col;
  return col >= 0 && col < g.cols && row >= 0 && k < g.count ? k : -1;
}

function markTile(wrap, img, g, k) {
  wrap.querySelectorAll(".mark").forEach((m) => m.remove());
  if (k < 0) return;
  const s = img.getBoundingClientRect().width / img.naturalWidth;
  const row = Math.floor(k / g.cols), col = k % g.cols;
  const mark = element("div", {className: "mark"});
  Object.assign(mark.style, {left: `${(g.gap + col * (g.tile[1] + g.gap)) * s - 1}px`,
                             top: `${(g.gap + row * (g.tile[0] + g.gap)) * s - 1}px`,
                             width: `${g.tile[1] * s}px`, height: `${g.tile[0] * s}px`});
  wrap.append(mark);
}

// ------------------------------------------------------------------ the input
async function setInput(request) {
  const view = await api("/api/input", request);
  clearError();
  state.input = view.input;
  showView(view);
  return view;
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
      const caption = element("figcaption", {textContent: `${layer.name} (${layer.shape.join("×")})`});
      fig.append(element("div", {className: "wrap"}), caption);
      layers.append(fig);
    }
    const wrap = fig.querySelector(".wrap");
    let img = wrap.querySelector("img");
    if (!img) {
      img = mosaicImage(layer.mosaic, layer, 250);
      img.addEventListener("click", (e) => {
        const k = tileAt(e, img, img.geometry);
        if (k >= 0) selectUnit(fig.dataset.layer, k);
      });
      wrap.append(img);
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
  $("unit-title").textContent = `Unit: ${layer}, channel ${unit}`;
  $("neuron-button").disabled = false;
  $("unit-neuron").removeAttribute("src");
  await Promise.all([showUnit(), showTop()]);
}

async function showUnit() {
  const {layer, unit} = state.unit;
  const rule = $("rule").value;
  const q = new URLSearchParams({input: state.input, layer, unit, rule});
  const t = performance.now();
  const r = await api(`/api/unit?${q}`);
  if (r.activation) $("unit-activation").src = r.activation;
  else $("unit-activation").removeAttribute("src");
  $("unit-projection").src = r.projection;
  $("unit-projection").dataset.key = `${r.layer}/${r.unit}/${r.rule}`;
  $("projection-caption").textContent =
    `projection, ${r.rule} rule${r.empty ? " (all zero)" : ""} · ${Math.round(performance.now() - t)} ms`;
}

async function showTop() {
  const {layer, unit} = state.unit;
  const r = await api(`/api/top?${new URLSearchParams({layer, unit})}`);
  const box = $("unit-top");
  if (r.images === null) {
    $("unit-top-status").textContent = r.status.error ||
      `computing over ${r.status.dataset}: ${Math.round(100 * r.status.progress)}%`;
    box.replaceChildren();
    setTimeout(() => { if (state.unit && state.unit.layer === layer && state.unit.unit === unit) showTop(); }, 1000);
    return;
  }
  $("unit-top-status").textContent = `over ${r.status.dataset}`;
  box.replaceChildren(...r.images.map((url, i) => element("img", {src: url, title: `image ${r.indices[i]}`})));
}

async function showNeuron() {
  const {layer, unit} = state.unit;
  $("neuron-button").disabled = true;
  $("neuron-button").textContent = "computing…";
  try {
    const r = await api(`/api/neuron?${new URLSearchParams({layer, unit})}`);
    if (state.unit.layer === layer && state.unit.unit === unit) $("unit-neuron").src = r.image;
  } finally {
    $("neuron-button").disabled = false;
    $("neuron-button").textContent = "Visualize this unit";
  }
}

// ------------------------------------------------------------------ one class
async function explainClass() {
  if (!state.input) return;
  const target = $("class-select").value;
  const jobs = state.info.methods.map(async (method) => {
    $(`map-${method}`).removeAttribute("src");
    const r = await api(`/api/class?${new URLSearchParams({input: state.input, target, method})}`);
    $(`map-${method}`).src = r.image;
  });
  jobs.push(showGradients(target));
  await Promise.all(jobs);
}

async function showGradients(target) {
  const r = await api(`/api/gradients?${new URLSearchParams({input: state.input, target})}`);
  $("gradients").replaceChildren(...r.layers.map((l) => element("figure", {className: "layer"},
    mosaicImage(l.image, l, 260), element("figcaption", {textContent: `${l.name} ‖g‖ = ${l.norm.toPrecision(3)}`}))));
}

async function showWeights() {
  const r = await api("/api/weights");
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

// send a frame, wait for its answer, then send the next: the rate the server keeps up with
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
  try {
    await setInput({method: "POST", body: blob, headers: {"Content-Type": "image/jpeg"}});
    state.frames += 1;
    const fps = state.frames / ((performance.now() - state.t0) / 1000);
    $("frames").textContent = `webcam: ${state.frames} frames, ${fps.toFixed(1)} frames/s`;
  } catch (err) {
    // the error is on the page; keep going
  }
  setTimeout(nextFrame, 0);
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
                                                  body: JSON.stringify({sample: k})}));
    return img;
  }));
  $("class-select").replaceChildren(...info.labels.map((label, k) =>
    element("option", {value: k, textContent: `${k}: ${label}`})));
  $("class-select").addEventListener("change", () => { $("class-select").dataset.user = "1"; });
  $("upload").addEventListener("change", async () => {
    const file = $("upload").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("image", file);
    await setInput({method: "POST", body: form}).catch(() => {});
    $("upload").value = "";
  });
  $("rule").addEventListener("change", () => { if (state.unit) showUnit().catch(() => {}); });
  $("neuron-button").addEventListener("click", () => showNeuron().catch(() => {}));
  $("class-button").addEventListener("click", () => explainClass().catch(() => {}));
  $("webcam").addEventListener("click", toggleWebcam);
  pollTop();
  showWeights().catch(() => {});
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
