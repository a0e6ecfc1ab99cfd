"""What one unit responds to beyond this image: its top-9 dataset images and its optimized image.

Top-9 (Zeiler & Fergus' panels, Yosinski's toolbox): ``top_activations``' table over a
dataset for every display layer at once (one forward pass per batch captures them all),
once per model. The pass runs in a background thread on its own
copy of the model (so the page stays responsive), shows a tqdm bar on the server's console
and a progress value the page polls, and is saved to
``cache_dir()/explore/top9-<model>-<fingerprint>.npz`` — the fingerprint covers the weights
file, the dataset and the layers, so a changed dataset is computed again.

The dataset: the shipped Fashion-MNIST samples (for 1-channel models) or the photos that
installed packages provide (RGB models), then the Fashion-MNIST / CIFAR-10 test set when it
is installed (never downloaded), then the image files of ``--images DIR``.

Neuron visualization: ``class_visualization`` with a layer and channel, computed when the
page asks and kept (in memory and as a PNG in the same cache folder).
"""
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..io import cache_dir
from ..plot.optimization import to_pixels
from ..data.images import to_displayable
from ..data.samples import fashion_samples, photo_samples
from ..techniques.class_vis import class_visualization
from ..techniques.receptive_field import receptive_field, rf_box
from ..autograd import no_grad
from ..backend import get_array_module, to_numpy
from ..nn import capture
from ..techniques.common import as_input
# the streaming top-k of ``top_activations``, run here for every layer in one pass
from ..techniques.top_activations import merge_top_k, unit_scores
from . import render

__all__ = ["gather_dataset", "TopImages", "NeuronImages", "IMAGE_EXTS"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm")
MAX_FILES = 5000          # image files read from --images DIR at most
_KEYS = ("scores", "indices", "positions")     # one layer's table, as in TopActivations
_FORMAT = 2                                    # of the cached table (part of its file name)


def gather_dataset(explorer, images_dir=None, installed=True):
    """(uint8 pixels (N, H, W[, 3]) at the model's input size, [source descriptions]).
    installed=False leaves out the installed test sets (tests use only the shipped samples)."""
    pix, sources = [], []
    if explorer.mode == "L":
        try:
            pix += [explorer.fit(img) for img, _ in fashion_samples()]
            sources.append(f"{len(pix)} shipped Fashion-MNIST samples")
        except FileNotFoundError:
            pass
    else:
        for p in photo_samples():
            with Image.open(p) as img:
                pix.append(explorer.fit(img))
        if pix:
            sources.append(f"{len(pix)} sample photos")
    if installed:
        pix += _installed_test_set(explorer, sources)
    if images_dir is not None:
        if not Path(images_dir).is_dir():
            raise FileNotFoundError(f"--images {images_dir}: no such folder")
        files = sorted(f for f in Path(images_dir).rglob("*") if f.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise FileNotFoundError(f"--images {images_dir}: no image files ({', '.join(IMAGE_EXTS)})")
        n = 0
        for f in files[:MAX_FILES]:
            try:
                with Image.open(f) as img:
                    pix.append(explorer.fit(img))
                n += 1
            except (OSError, ValueError, Image.DecompressionBombError) as err:  # too big, too thin
                print(f"minicnn explore: skipping unreadable {f} ({err})")
        sources.append(f"{n} images of {images_dir}")
    if not pix:
        raise FileNotFoundError("no dataset for the top images: give --images DIR")
    return np.stack(pix), sources


def _installed_test_set(explorer, sources):
    """The Fashion-MNIST (28×28 grey) or CIFAR-10 (32×32 RGB) test set, if installed."""
    from ..data.cifar import load_cifar10
    from ..data import load_fashion_mnist
    load, name = ((load_fashion_mnist, "Fashion-MNIST") if explorer.mode == "L"
                  else (load_cifar10, "CIFAR-10"))
    if explorer.size != ((28, 28) if explorer.mode == "L" else (32, 32)):
        return []
    try:
        images, _ = load("test", download=False)
    except (FileNotFoundError, OSError, ValueError):
        from ..data.fetch import how_to_get
        sources.append(f"no {name} test set installed (get it: "
                       f"{how_to_get('fashion-mnist' if name == 'Fashion-MNIST' else 'cifar10')})")
        return []
    sources.append(f"{len(images)} {name} test images")
    return list(images)


class TopImages:
    """The top-9 table of every display layer over a dataset, computed once in the background."""

    def __init__(self, explorer, model_copy, pixels, sources, k=9, batch_size=32):
        self.ex, self.model, self.pixels, self.sources = explorer, model_copy, pixels, sources
        self.k, self.batch_size = k, batch_size
        self.tables, self.done, self.error = {}, 0, None
        self.total = int(np.ceil(len(pixels) / batch_size))         # batches of the one pass
        digest = hashlib.sha256(json.dumps([_FORMAT, explorer.name, _weights_id(explorer.model),
                                            explorer.layers, k]).encode())
        digest.update(np.ascontiguousarray(pixels).tobytes())
        self.path = cache_dir() / "explore" / f"top9-{explorer.name}-{digest.hexdigest()[:16]}.npz"
        self._thread = None
        self._projections = {}                 # (layer, unit, rule) -> (k, C, H, W)

    def start(self):
        """Load the cached tables, or start computing them in a daemon thread."""
        if self.path.is_file():
            try:
                with np.load(self.path) as f:
                    self.tables = {n: tuple(f[f"{n}/{key}"] for key in _KEYS)
                                   for n in self.ex.layers}
                self.done = self.total
                return self
            except (OSError, ValueError, KeyError) as err:     # damaged or older: compute again
                print(f"minicnn explore: recomputing {self.path.name} ({err})")
                self.tables = {}
        self._thread = threading.Thread(target=self._run, name="top9", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    def status(self):
        return {"progress": self.done / max(self.total, 1), "ready": len(self.tables),
                "layers": len(self.ex.layers), "error": self.error,
                "dataset": ", ".join(self.sources), "size": int(len(self.pixels))}

    def _run(self):
        """One pass over the dataset capturing every display layer at once; per layer, the
        same table as ``top_activations`` (each channel's max response and where it is,
        the best k kept after every batch)."""
        layers, best = self.ex.layers, {}
        try:
            with tqdm(total=self.total, desc=f"top-{self.k} images for {self.ex.name}") as bar:
                for s in range(0, len(self.pixels), self.batch_size):
                    x = as_input(self.model, self.ex.pre.preprocess(
                        self.pixels[s:s + self.batch_size]))
                    with no_grad(), capture(self.model, layers) as acts:
                        self.model(x)
                    for n in layers:
                        act = acts[n].data
                        xp = get_array_module(act)
                        units = xp.arange(act.shape[1])
                        score, pos = unit_scores(act, units)
                        idx = xp.broadcast_to(s + xp.arange(act.shape[0]),
                                              (len(units), act.shape[0]))
                        new = (score.T.astype(xp.float64), idx, pos.transpose(1, 0, 2))
                        if n not in best:                   # empty (units, 0) tables
                            best[n] = tuple(a[:, :0] for a in new)
                        best[n] = merge_top_k(best[n], new, self.k)
                    self.done += 1
                    bar.update(1)
            for n in layers:
                scores, idx, pos = best[n]
                xp = get_array_module(scores)
                order = xp.argsort(-scores, axis=1, kind="stable")
                self.tables[n] = (to_numpy(xp.take_along_axis(scores, order, 1)),
                                  to_numpy(xp.take_along_axis(idx, order, 1)),
                                  to_numpy(xp.take_along_axis(pos, order[:, :, None], 1)))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".part.npz")
            np.savez(tmp, **{f"{n}/{key}": a for n, table in self.tables.items()
                             for key, a in zip(_KEYS, table)})
            tmp.replace(self.path)
        except Exception as err:          # shown on the page; the server keeps serving
            self.error = f"{type(err).__name__}: {err}"

    def top(self, layer, unit, rule=None):
        """[(png url, dataset index, projection png url or None)] of the unit's top-k patches,
        or None while computing. With a ReLU ``rule``, each patch's projection too (DeepVis:
        the unit's deconv on each of its top images), cropped to the same receptive field."""
        layer, unit = self.ex.check_unit(layer, unit)
        if layer not in self.tables:
            return None
        _, indices, positions = self.tables[layer]
        try:
            rf = receptive_field(self.ex.model, layer) if positions[unit, 0, 0] >= 0 else None
        except ValueError:
            rf = None
        projections = [None] * len(indices[unit])
        if rule is not None:
            projections = self.projections(layer, unit, rule, indices[unit])
        out = []
        for idx, pos, g in zip(indices[unit], positions[unit], projections):
            img = self.pixels[int(idx)]
            if rf is not None:
                img = _crop(img, rf_box(rf, pos))
                g = None if g is None else np.moveaxis(_crop(np.moveaxis(g, 0, -1),
                                                             rf_box(rf, pos)), -1, 0)
            out.append((render.png_url(img), int(idx),
                        None if g is None else render.png_url(render.signed_image(g))))
        return out

    def projections(self, layer, unit, rule, indices):
        """The unit's projection to pixels on each dataset image of ``indices`` (C, H, W) each:
        one batched backward pass from the unit's channel, every other unit 0 (each image's
        gradient depends on that image alone: the model is in eval mode)."""
        key = (layer, unit, rule)
        if key not in self._projections:
            from ..techniques.gradients import input_gradient
            x = self.ex.pre.preprocess(self.pixels[np.asarray(indices, dtype=np.int64)])
            with self.ex.lock:
                g = input_gradient(self.ex.model, x, layer=layer, unit=unit,
                                   signal="activation", relu_rule=rule)
            if len(self._projections) > 256:           # bounded: the oldest go first
                self._projections.pop(next(iter(self._projections)))
            self._projections[key] = np.asarray(to_numpy(g), dtype=np.float64)
        return self._projections[key]


def _weights_id(model):
    """Which weights the model holds (their file, its size and time), for cache names: a file
    replaced by `minicnn weights import` or a new training run gives new cached results."""
    path = getattr(model, "weights_path", None)
    if not (path and Path(path).is_file()):
        return None
    stat = Path(path).stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _crop(img, box):
    """The part of the image inside ``box`` (top, left, bottom, right), padding outside in black."""
    top, left, bottom, right = box
    h, w = img.shape[:2]
    out = np.zeros((bottom - top, right - left) + img.shape[2:], dtype=img.dtype)
    r0, r1, c0, c1 = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    if r0 < r1 and c0 < c1:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = img[r0:r1, c0:c1]
    return out


class NeuronImages:
    """A unit's optimized image (gradient ascent on its mean activation), kept once computed."""

    def __init__(self, explorer, steps=None):
        self.ex = explorer
        small = min(explorer.size) <= 64
        self.steps = steps or (60 if small else 20)
        self.opts = (dict(lr=0.1, l2=1e-2, jitter=1, blur_sigma=0.5, blur_every=2) if small else
                     dict(lr=0.05, l2=1e-3, decay=0.01, jitter=8, blur_sigma=1.0, blur_every=2,
                          octaves=2, shape=(3, 128, 128)))
        weights = hashlib.sha256(json.dumps(_weights_id(explorer.model)).encode()).hexdigest()
        self.folder = cache_dir() / "explore" / f"neurons-{explorer.name}-{weights[:12]}"
        self._memory = {}

    def image(self, layer, unit):
        """PNG data URL of channel ``unit`` of ``layer``'s visualization."""
        layer, unit = self.ex.check_unit(layer, unit)
        key = (layer, unit, self.steps)
        if key in self._memory:
            return self._memory[key]
        path = self.folder / f"{layer}-{unit}-{self.steps}.png"
        if path.is_file():
            with Image.open(path) as img:
                pix = np.asarray(img)
        else:
            with self.ex.lock:
                images, _ = class_visualization(self.ex.model, unit, self.steps, layer=layer,
                                                init="random", relu_rule="redirected", seed=0,
                                                **self.opts)
            pix = render.to_uint8(to_displayable(to_pixels(images[0], self.ex.pre),
                                                 mode="percentile"))
            self.folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pix).save(path)
        self._memory[key] = render.png_url(pix)
        return self._memory[key]
