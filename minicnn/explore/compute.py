"""What the explorer page asks of a model, each answer a call to an existing technique (saliency
and Grad-CAM: their formulas on one pass shared with the gradients view, tested equal).

    ex = Explorer(mc.models.fashion_net(pretrained=True), "fashion_net")
    inp = ex.add_input(pixels)                        # uint8 image at the model's input size
    view = ex.view(inp)                               # top-5 + every layer's activation mosaic
    ex.unit(inp, "features.3", 5, rule="guided")      # activation map + projection of channel 5
    ex.class_map(inp, 7, "gradcam")                   # saliency | smoothgrad | gradcam | occlusion
    ex.class_pass(inp, 7)                             # the pass saliency, Grad-CAM, gradients share
    ex.gradients(inp, 7)                              # ∂score/∂(each layer), ConvNetJS's view

One model serves many browser tabs: every computation on it holds ``self.lock`` (a capture
adds a slot to the model's modules for the duration of one forward, so two forwards on one
model must not overlap). Inputs are kept per tab (``sessions.Sessions``): a page refers to
"its" image by the id it got back and its session id, so one tab's webcam never evicts
another tab's input.
"""
import io
import itertools
import os
import secrets
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import nn
from ..autograd import no_grad
from ..backend import to_numpy
from ..data.images import _to_mode, center_crop, resize_short_side
from ..nn import capture
from ..techniques.common import as_input, check_layer, frozen
from ..techniques.filters import filter_images, first_conv_layer
from ..techniques.gradcam import bilinear_resize, cam_layer
from ..techniques.gradients import backward_from_target, input_gradient, smoothgrad
from ..techniques.occlusion import occlusion
from . import render
from .sessions import InputGone, Sessions

__all__ = ["Explorer", "ExploreError", "InputGone", "decode_image", "display_layers",
           "default_rule", "limit_blas_threads", "RULES", "METHODS"]

RULES = ("standard", "deconvnet", "guided")
METHODS = ("saliency", "smoothgrad", "gradcam", "occlusion")
MAX_PIXELS = 40_000_000        # an upload larger than this (width × height) is refused
_SKIP = (nn.Dropout, nn.Flatten, nn.Identity)
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class ExploreError(ValueError):
    """A request the page sent cannot be answered; the message says why (HTTP 400)."""


def decode_image(data, mode, name="upload"):
    """Bytes of an image file -> PIL image in ``mode`` ("L" or "RGB"), EXIF orientation applied.
    Not an image, or more than MAX_PIXELS pixels: ExploreError naming the file and the size."""
    too_large = f"{name}: image is too large (at most {MAX_PIXELS:,} pixels); scale it down first"
    try:
        with warnings.catch_warnings():
            # our own limit, checked below from the header, speaks before Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ExploreError(too_large.replace("image is", f"image of {w}×{h} pixels is"))
            img.load()
    except Image.DecompressionBombError:        # beyond twice Pillow's limit: refused in open
        raise ExploreError(too_large) from None
    except UnidentifiedImageError as err:
        raise ExploreError(f"{name}: not an image file ({len(data)} bytes starting "
                           f"{bytes(data[:12])!r}; PNG, JPEG, GIF, BMP, WebP... expected)") from err
    except (OSError, SyntaxError) as err:
        raise ExploreError(f"{name}: Pillow cannot read this image ({len(data)} bytes; {err})") \
            from err
    return _to_mode(ImageOps.exif_transpose(img), mode)


def display_layers(model):
    """The layers shown as activation grids, in call order: every leaf layer of a small net
    (Dropout / Flatten / Identity repeat their input and are left out); for a deep net the
    top-level layers and blocks (names with at most one dot), so a page stays readable."""
    names = model.layer_names()
    leaves = [n for n in names if not model.get_submodule(n).children()]
    if len(leaves) > 40:
        short = [n for n in names if n.count(".") <= 1]
        leaves = [n for n in short if not any(o.startswith(n + ".") for o in short)]
    return [n for n in leaves if not isinstance(model.get_submodule(n), _SKIP)]


def default_rule(model):
    """(the ReLU rule a unit's projection starts with, {rule: why it shows little}).

    The deconvnet rule ignores which ReLUs were on in the forward pass (``g * (g > 0)``):
    the only thing it keeps of the image is max-pooling's switches. A network without
    max-pool (EfficientNet, ResNet's body) then projects every deep unit to one and the same
    pattern, so such a model starts with guided backprop, which keeps the forward's ReLUs."""
    if any(isinstance(m, nn.MaxPool2d) for _, m in model.named_modules()):
        return "deconvnet", {}
    return "guided", {"deconvnet": "this network has no max-pool: the deconvnet rule keeps "
                                   "nothing of the image (no switches), so every deep unit "
                                   "projects to the same pattern; the guided rule keeps the "
                                   "forward's ReLUs"}


def limit_blas_threads(n=1):
    """Run BLAS on ``n`` threads in this process, as the explorer's server does, unless the
    environment names a thread count (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
    MKL_NUM_THREADS), which wins. Returns the BLAS threads now in use (None: unknown,
    threadpoolctl is not installed: ``pip install minicnn[explore]``).

    Why one: a server runs many computations side by side (each tab's requests, the top-9
    pass, a training run), and a multi-threaded BLAS call spins its helper threads while the
    interpreter does the NumPy work between matrix products (EfficientNet's depthwise convs,
    ReLUs, batch norms). On two cores shared with other work that is a loss, not a gain:
    "Explain" on EfficientNet-Lite0 took 1.8-4.0 s on one BLAS thread and 11.6-14.0 s on two,
    side by side in one process at load 6.5."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return None
    if not any(os.environ.get(k) for k in BLAS_ENV):
        threadpool_limits(limits=n, user_api="blas")
    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return max(counts) if counts else None


class Input:
    """One image the page is looking at: pixels (as the model sees them) and its input x."""

    def __init__(self, key, pixels, x):
        self.key, self.pixels, self.x = key, pixels, x
        self.acts = None                    # {layer: NumPy (C, h, w) or (D,)}, set by view()
        self.logits = None


class Explorer:
    """A model, its display layers, the inputs in use, and the computations of the page."""

    def __init__(self, model, name, layers=None, labels=None):
        self.model, self.name = model.eval(), name
        self.pre = model.preprocess
        self.layers = list(layers) if layers is not None else display_layers(model)
        for n in self.layers:
            check_layer(model, n)
        self.labels = list(labels or getattr(model, "labels", None) or [])
        self.lock = threading.RLock()
        self._last_pass = None              # (input key, class) -> class_pass, the last one
        self.sessions, self._ids = Sessions(), itertools.count(1)
        self._run = secrets.token_hex(3)   # in input ids: a restarted server's ids are new ones
        self.mode = "L" if self.pre.channels == 1 else "RGB"
        self.size = tuple(self.pre.input_size or (224, 224))
        with self.lock, no_grad(), capture(self.model, self.layers) as acts:
            out = self.model(as_input(self.model, np.zeros((1, self.pre.channels) + self.size,
                                                           np.float32)))
        self.shapes = {n: tuple(acts[n].shape[1:]) for n in self.layers if n in acts}
        self.layers = [n for n in self.layers if n in self.shapes]
        self.classes = out.shape[1]
        if len(self.labels) != self.classes:
            self.labels = [str(k) for k in range(self.classes)]
        self.default_rule, self.rule_notes = default_rule(model)

    def layer_info(self, name):
        """{"name", "type", "shape"} of a display layer: what its caption says."""
        return {"name": name, "type": type(self.model.get_submodule(name)).__name__,
                "shape": list(self.shapes[name])}

    # ------------------------------------------------------------------ inputs
    def fit(self, img):
        """A PIL image (or uint8 array) -> uint8 pixels at the model's input size: the short side
        resized (to ``preprocess.resize`` when the model has one) and the centre cropped; an image
        already at the input size is used as it is (so a sample is never resized twice)."""
        img = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, np.uint8))
        img = _to_mode(img, self.mode)
        if img.size == self.size[::-1]:          # already fitted (a shipped sample): as it is
            return np.asarray(img, dtype=np.uint8).copy()
        img = resize_short_side(img, self.pre.resize or min(self.size))
        return np.asarray(center_crop(img, self.size), dtype=np.uint8).copy()

    def add_input(self, img, session="default"):
        """Keep an image (PIL, or uint8 array of any size) as a new input of the tab
        ``session``; returns the Input."""
        pixels = self.fit(img)
        inp = Input(f"i{next(self._ids)}-{self._run}", pixels, self.pre.preprocess(pixels)[0])
        self.sessions.add(session, inp)
        return inp

    def get_input(self, key, session="default"):
        """The input ``key`` of the tab ``session``; InputGone once no longer kept."""
        return self.sessions.get(session, key)

    def check_unit(self, layer, unit):
        """The layer name and channel index, checked against the layer's output shape."""
        if layer not in self.shapes:
            raise ExploreError(f"layer {layer!r} is not shown; layers: {', '.join(self.layers)}")
        n = self.shapes[layer][0]
        if not isinstance(unit, (int, np.integer)) or not 0 <= unit < n:
            raise ExploreError(f"unit {unit!r} is out of range for layer {layer!r}: it has {n} "
                               f"channels (output shape {self.shapes[layer]}), valid 0..{n - 1}")
        return layer, int(unit)

    def check_target(self, target):
        if not isinstance(target, (int, np.integer)) or not 0 <= target < self.classes:
            raise ExploreError(f"class {target!r} is out of range: the model has {self.classes} "
                               f"classes, valid 0..{self.classes - 1}")
        return int(target)

    # -------------------------------------------------------------- the forward
    def view(self, inp):
        """Top-5 and every display layer's activations as a mosaic (one forward pass)."""
        with self.lock, no_grad(), capture(self.model, self.layers) as acts:
            logits = self.model(as_input(self.model, inp.x[None]))
        inp.acts = {n: to_numpy(acts[n].data[0]) for n in self.layers}
        inp.logits = to_numpy(logits.data[0]).astype(np.float64)
        p = np.exp(inp.logits - inp.logits.max())
        p /= p.sum()
        top = np.argsort(-p)[:5]
        layers = []
        for n in self.layers:
            img, geom = render.mosaic(inp.acts[n])
            layers.append({**self.layer_info(n), "mosaic": render.png_url(img), **geom})
        return {"input": inp.key, "image": render.png_url(inp.pixels),
                "top5": [{"class": int(k), "label": self.labels[k], "prob": float(p[k])}
                         for k in top],
                "layers": layers}

    # ------------------------------------------------------------------ a unit
    def unit(self, inp, layer, unit, rule=None):
        """Channel ``unit`` of ``layer`` for this input: its activation map over the image and
        its projection to pixels, one backward pass with the ReLU rule ``rule`` starting from
        the channel's own activation (every other unit 0, as Zeiler & Fergus do)."""
        layer, unit = self.check_unit(layer, unit)
        rule = rule or self.default_rule
        if rule not in RULES:
            raise ExploreError(f"rule {rule!r} is not a ReLU backward rule; choose one of "
                               f"{', '.join(RULES)}")
        if inp.acts is None:
            self.view(inp)
        act = inp.acts[layer][unit]
        out = {"layer": layer, "unit": unit, "rule": rule, "max": float(np.max(act)),
               "input": inp.key, "label": self.unit_label(layer, unit)}
        if act.ndim == 2:
            heat = to_numpy(bilinear_resize(np.asarray(act, np.float64), self.size))
            out["activation"] = render.png_url(render.heat_overlay(inp.pixels, heat))
            out["activation_bar"] = render.colour_bar("jet", render.display_scale(heat),
                                                      "activation")
        else:                                # a dense unit: one number, no map to draw
            out["value"] = float(act)
        with self.lock:
            g = input_gradient(self.model, inp.x, layer=layer, unit=unit, signal="activation",
                               relu_rule=rule)
        out["projection"] = render.png_url(render.signed_image(g))
        out["projection_bar"] = render.colour_bar("signed", render.display_scale(g),
                                                  "∂(unit)/∂(pixel)")
        out["empty"] = not np.any(g)
        out["note"] = self.rule_notes.get(rule, "")
        return out

    def strongest(self, inp, layer, unit):
        """(i, j) where channel ``unit`` of ``layer`` responds most to this input ((0, 0) for a
        dense unit)."""
        if inp.acts is None:
            self.view(inp)
        act = inp.acts[layer][unit]
        if act.ndim != 2:
            return 0, 0
        i, j = np.unravel_index(int(np.argmax(act)), act.shape)
        return int(i), int(j)

    def unit_label(self, layer, unit):
        """The class name of an output unit (a layer with one unit per class), else ''."""
        return self.labels[unit] if self.shapes[layer] == (self.classes,) else ""

    # ---------------------------------------------------------------- a class
    def class_pass(self, inp, target):
        """One forward and one backward pass from class ``target`` (standard rule), shared by
        the saliency map, Grad-CAM and the gradients view of one "Explain": {"x": ∂y/∂x
        (C, H, W), "grads": {layer: ∂y/∂(its output)}, "acts": {Grad-CAM's layer: its
        output}} for the display layers and the model's ``default_cam_layer``, NumPy, no
        batch axis. The last pass is kept, so the three requests of one Explain cost one."""
        key = (inp.key, target)
        with self.lock:
            if self._last_pass is not None and self._last_pass[0] == key:
                return self._last_pass[1]
            cam = getattr(self.model, "default_cam_layer", None)
            layers = self.layers + ([cam] if cam is not None and cam not in self.layers else [])
            with frozen(self.model, eval_mode=False), capture(self.model, layers) as acts:
                xt = as_input(self.model, inp.x[None], requires_grad=True)
                backward_from_target(self.model(xt), target)
            out = {"x": to_numpy(xt.grad[0]),
                   "grads": {n: to_numpy(acts[n].grad[0]) for n in layers
                             if acts[n].grad is not None},
                   "acts": {} if cam is None else {cam: to_numpy(acts[cam].data[0])}}
            self._last_pass = (key, out)
        return out

    def explain_settings(self):
        """{method: (its options here, the caption saying them)}: SmoothGrad's noisy copies
        and occlusion's patches. A small input (up to 64 pixels a side) gets many of both; an
        ImageNet-sized one few, so that "Explain" stays within a few seconds on two cores
        (EfficientNet-Lite0, one forward ~41 ms and forward + backward ~83 ms idle): 4 copies
        one at a time (batch 1 is the fastest per copy on one BLAS thread; on four photos the
        mean of 4 agrees with that of 24 others at r = 0.90-0.97 over 16-pixel blocks, 6
        copies 0.93-0.98, one gradient -0.13-0.33) and 3×3 places of a patch a third of the
        side, overlapping by 2 pixels (on the espresso cup and on Grace Hopper the patches
        over the cup and over her cap and face lose the most; 4×4 patches of a quarter side,
        16 forwards instead of 9, left the cup's map nearly flat)."""
        side = min(self.size)
        if side <= 64:
            n, batch = 16, 16
            size, stride, occ_batch = side // 4, side // 8, 16     # a quarter, 8×8 positions
        else:
            n, batch = 4, 1
            stride, occ_batch = side // 3, 1
            size = side - 2 * stride                                # 3×3 patches end at the edge
        rows = (side - size) // stride + 1
        return {"smoothgrad": ({"n_samples": n, "batch_size": batch},
                               f"SmoothGrad: mean |∂y/∂x| over {n} noisy copies"),
                "occlusion": ({"size": size, "stride": stride, "batch_size": occ_batch},
                              f"occlusion: share of p lost ({rows}×{rows} places of a grey "
                              f"{size}-px patch)")}

    def class_array(self, inp, target, method):
        """(map (H, W) NumPy, caption) of ``method`` for class ``target``: saliency's
        max_c |∂y/∂x_c| and Grad-CAM from the shared ``class_pass``, SmoothGrad's mean
        |∂y/∂x| over noisy copies, occlusion's share of the class probability lost when a
        patch covers each pixel."""
        target = self.check_target(target)
        if method not in METHODS:
            raise ExploreError(f"method {method!r} is not known; choose one of "
                               f"{', '.join(METHODS)}")
        if method == "saliency":
            return np.abs(self.class_pass(inp, target)["x"]).max(axis=0), "saliency |∂y/∂x|"
        if method == "gradcam":
            return self._grad_cam(inp, target), "Grad-CAM"
        options, caption = self.explain_settings()[method]
        with self.lock:
            if method == "smoothgrad":
                m = np.abs(smoothgrad(self.model, inp.x, target, kind="magnitude",
                                      **options)).max(axis=-3)      # drawn as saliency is
            else:
                occ = occlusion(self.model, inp.x, target, **options)
                m = (occ.base_prob - occ.pixel_map) / max(occ.base_prob, 1e-12)
        return m, caption

    def _grad_cam(self, inp, target):
        """Grad-CAM (techniques.gradcam.grad_cam's formula) on the shared pass: the feature
        maps A^k of the model's Grad-CAM layer weighed by their mean gradient α_k, summed,
        ReLU'd and resized to the input."""
        try:
            cam_layer(self.model)
        except ValueError as err:                   # a model without one: the error says so
            raise ExploreError(str(err)) from None
        p = self.class_pass(inp, target)
        layer = self.model.default_cam_layer
        a, g = p["acts"][layer], p["grads"].get(layer)
        if g is None or a.ndim != 3:
            raise ExploreError(f"Grad-CAM needs spatial maps at {layer!r} that the class "
                               f"depends on; it gives {a.shape}")
        alpha = g.mean(axis=(1, 2), keepdims=True)                  # α_k (K, 1, 1)
        cam = (alpha * a).sum(axis=0)                               # Σ_k α_k A^k (h, w)
        return to_numpy(bilinear_resize(cam * (cam > 0), self.size))

    def class_map(self, inp, target, method):
        """Why class ``target``: saliency, SmoothGrad, Grad-CAM or occlusion over the image,
        as a picture with its colour bar and a caption saying the settings."""
        m, caption = self.class_array(inp, target, method)
        target = int(target)
        if method in ("saliency", "smoothgrad"):
            pic = render.grey_image(m)
            bar = render.colour_bar("grey", render.display_scale(m), "|∂y/∂x|")
        elif method == "gradcam":
            pic = render.heat_overlay(inp.pixels, m, percentile=99.0)
            bar = render.colour_bar("jet", render.display_scale(m), "Grad-CAM")
        else:
            pic = render.heat_overlay(inp.pixels, m, percentile=None)
            bar = render.colour_bar("jet", 1.0, "share of p lost")
        return {"method": method, "class": target, "label": self.labels[target],
                "input": inp.key, "image": render.png_url(pic), "bar": bar,
                "caption": caption}

    # --------------------------------------------------- ConvNetJS: weights, gradients
    def weights(self):
        """Each display layer with weights: its filters as a mosaic (the first conv's as
        images, deeper convs one grey tile per input channel, up to 16 channels of the first
        32 filters), a Linear layer's matrix as a picture, and |w| statistics."""
        out, first = [], first_conv_layer(self.model)
        for n in self.layers:
            m = self.model.get_submodule(n)
            w = getattr(m, "weight", None)
            if w is None or not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            wn = np.asarray(to_numpy(w.data), dtype=np.float64)
            entry = {"name": n, "shape": list(wn.shape), "mean_abs": float(np.abs(wn).mean()),
                     "std": float(wn.std())}
            if n == first:
                img, geom = render.mosaic(filter_images(self.model, n, per_channel=False)
                                          if wn.shape[1] in (1, 3) else wn[:, 0])
                entry["note"] = "first layer: each filter drawn as the pattern it detects"
            elif wn.ndim == 4:
                f, c = min(wn.shape[0], 32), min(wn.shape[1], 16)
                tiles = wn[:f, :c].reshape(f * c, *wn.shape[2:])
                img, geom = render.mosaic(tiles, signed=True, cols=c)
                entry["note"] = (f"filters 0..{f - 1} (rows) × input channels 0..{c - 1} "
                                 "(columns); grey = 0")
            else:
                mat = render.shrink(wn, 256)
                img, geom = render.mosaic(mat[None], max_side=256, signed=True)
                entry["note"] = "rows: outputs, columns: inputs (block-averaged); grey = 0"
            entry.update(image=render.png_url(img), **geom)
            out.append(entry)
        return out

    def gradients(self, inp, target):
        """∂y_target/∂(each display layer's output) for this input (the shared
        ``class_pass``); each layer's gradient as a signed mosaic (grey = 0) with its norm."""
        target = self.check_target(target)
        grads = self.class_pass(inp, target)["grads"]
        out = []
        for n in self.layers:
            if n not in grads:
                continue
            img, geom = render.mosaic(grads[n], signed=True)
            out.append({"name": n, "norm": float(np.linalg.norm(grads[n])),
                        "image": render.png_url(img), **geom})
        return {"class": target, "label": self.labels[target], "layers": out}
