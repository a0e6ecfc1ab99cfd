"""Images in and out of a network: load a photo, preprocess it, show it again.

    img = load_image("cat.jpg", size=256, center_crop=224)   # uint8 (224, 224, 3)
    x = IMAGENET_TORCHVISION.preprocess(img)                  # float32 (1, 3, 224, 224)
    back = IMAGENET_TORCHVISION.deprocess(x)[0]               # float (224, 224, 3), 0-255 scale
    plt.imshow(to_displayable(back))                          # float in [0, 1]

Three separate steps, kept separate on purpose:
  * ``load_image`` gives uint8 pixels (HWC, RGB) — what the eye sees;
  * ``Preprocess`` maps pixels to the numbers one model was trained on, and
    back (exact inverses). It travels with the weights in their manifest;
  * ``to_displayable`` maps any array to [0, 1] for plotting. A deprocessed
    *optimized* image (class visualization, adversarial example) may leave
    [0, 255]: clipping it hides that, min-max rescaling shows it — choose.

NumPy in, NumPy out: move a device array to the host with ``mc.to_numpy`` first.
Only NumPy and Pillow are used here.
"""
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

BILINEAR = Image.Resampling.BILINEAR

# Images are bounded before their pixels are decoded (only the header is read first): a small
# compressed file can hold a huge picture (a 20000×20000 PNG of one colour is 48 KB on disk
# and 1.2 GB decoded), and a very thin one (1×30000) becomes huge once its short side is
# resized up to a model's input size.
MAX_IMAGE_PIXELS = 50_000_000      # 50 megapixels: more than any phone camera
MAX_ASPECT_RATIO = 50              # long side / short side


# ---------------------------------------------------------------- loading
def load_image(path, mode="RGB", size=None, center_crop=None):
    """Read an image file as a uint8 array: (H, W, 3) for mode "RGB", (H, W) for "L".

    Any Pillow mode is accepted. Transparent images (RGBA, LA, palette with a
    transparent colour) are composited on a white background, then converted.
    16-bit greyscale is scaled to 8 bits. The EXIF orientation tag is applied,
    so a phone photo comes out the way it is shown.
    size: int -> the short side is resized to ``size`` (aspect kept, bilinear);
          (H, W) -> resized to exactly that.
    center_crop: int or (H, W), taken after the resize ("resize 256, crop 224").
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"load_image: mode must be 'RGB' or 'L', got {mode!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_image: no image file at '{path}'")
    try:
        with Image.open(path) as img:
            check_image_size(img.size, f"load_image: '{path}'")
            img.load()
            img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as err:     # Pillow's own limit, hit while opening
        raise ValueError(f"load_image: '{path}' is refused before decoding: {err} (minicnn "
                         f"reads at most {MAX_IMAGE_PIXELS:,} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"load_image: Pillow cannot read '{path}' as an image ({err})") from err
    except ValueError as err:          # Pillow's own limits, e.g. a PNG text chunk bomb
        if str(err).startswith("load_image"):
            raise
        raise ValueError(f"load_image: Pillow refuses '{path}' ({err})") from None
    try:
        img = _to_mode(img, mode)
    except ValueError as err:          # a colour space Pillow cannot convert (LAB, CMYK TIFF...)
        raise ValueError(f"load_image: '{path}' is in colour mode {img.mode}, which cannot be "
                         f"converted to {mode} ({err})") from None
    if size is not None:
        img = (resize_short_side(img, size) if np.ndim(size) == 0
               else img.resize((int(size[1]), int(size[0])), BILINEAR))
    if center_crop is not None:
        img = _center_crop(img, center_crop)
    return np.asarray(img, dtype=np.uint8).copy()


def check_image_size(size, who):
    """ValueError if an image of ``size`` = (width, height) is larger than MAX_IMAGE_PIXELS or
    thinner than 1:MAX_ASPECT_RATIO; checked on the header, before any pixel is decoded."""
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"{who} has no pixels ({w}×{h})")
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(f"{who} is {w}×{h} = {w * h:,} pixels; images over "
                         f"{MAX_IMAGE_PIXELS:,} pixels are refused before decoding: "
                         "shrink it first")
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        raise ValueError(f"{who} is {w}×{h}: more than {MAX_ASPECT_RATIO} times longer than "
                         "wide; resizing its short side to a model's input size would make it "
                         "enormous. Crop it first")


def _to_mode(img, mode):
    """Convert a PIL image of any mode to "RGB" or "L" (alpha composited on white)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):          # 16-bit greyscale PNG/TIFF
        a = np.asarray(img).astype(np.float64)
        a = np.round(a * (255 / 65535)) if a.max() > 255 else a
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert(mode)


def _as_pil(img):
    return img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))


def _like(result, original):
    return result if isinstance(original, Image.Image) else np.asarray(result).copy()


def resize_short_side(img, n):
    """Resize (bilinear) so the shorter side is ``n`` pixels; the longer side keeps
    the aspect ratio, rounded down as torchvision's Resize(n) does.
    img: PIL image or uint8 array (H, W[, C]); returns the same kind."""
    pil = _as_pil(img)
    w, h = pil.size
    if w <= h:
        new_w, new_h = n, int(n * h / w)
    else:
        new_w, new_h = int(n * w / h), n
    check_image_size((new_w, new_h), f"resize_short_side: the {w}×{h} image resized to "
                                     f"short side {n}")
    return _like(pil.resize((new_w, new_h), BILINEAR), img)


def center_crop(img, size):
    """Central ``size`` (int or (H, W)) window of a PIL image or array (H, W[, C]);
    offsets rounded as torchvision's CenterCrop. Returns the same kind."""
    ch, cw = (size, size) if np.ndim(size) == 0 else size
    if isinstance(img, Image.Image):
        w, h = img.size
    else:
        h, w = np.shape(img)[:2]
    if ch > h or cw > w:
        raise ValueError(f"center_crop: crop {ch}x{cw} is larger than the image {h}x{w}; "
                         "resize first (resize_short_side)")
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    if isinstance(img, Image.Image):
        return img.crop((left, top, left + cw, top + ch))
    return np.asarray(img)[top:top + ch, left:left + cw].copy()


_center_crop = center_crop      # load_image's argument of the same name hides the function


# ---------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocess:
    """How one model wants its input: ``x = (pixels * scale - mean) / std``.

    mean, std: per channel, in the *model's* channel order (1 value for greyscale).
    channel_order: "RGB" or "BGR" (Caffe models). Images given to ``preprocess``
        are always RGB; "BGR" reverses the channels before normalizing.
    scale: 1/255 for models trained on [0, 1] input, 1.0 for 0-255 input.
    input_size: (H, W) the model was trained at, or None (any size).
    resize: the short side to resize to before the centre crop, or None.
    Resizing happens when loading (``load``); ``preprocess`` never resamples.
    """
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    scale: float = 1.0 / 255
    input_size: tuple = None
    resize: int = None

    def __post_init__(self):
        object.__setattr__(self, "mean", _numbers(self.mean, "mean"))
        object.__setattr__(self, "std", _numbers(self.std, "std"))
        object.__setattr__(self, "scale", _numbers(self.scale, "scale")[0])
        if self.input_size is not None:
            object.__setattr__(self, "input_size", _sizes(self.input_size, "input_size", 2))
        if self.resize is not None:
            object.__setattr__(self, "resize", _sizes(self.resize, "resize", 1)[0])
        if len(self.mean) != len(self.std) or len(self.mean) not in (1, 3):
            raise ValueError(f"Preprocess: mean {self.mean} and std {self.std} need 1 or 3 "
                             "values each, the same number")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"Preprocess: channel_order must be 'RGB' or 'BGR', "
                             f"got {self.channel_order!r}")
        if min(self.std) <= 0 or self.scale <= 0:
            raise ValueError(f"Preprocess: std {self.std} and scale {self.scale} must be > 0")

    @property
    def channels(self):
        return len(self.mean)

    def preprocess(self, images, dtype=np.float32):
        """uint8 (or float) pixels -> model input (N, C, H, W) of ``dtype``.

        images: (H, W) or (H, W, C): one image; (N, H, W) or (N, H, W, C): a batch.
        A 3-D array is one HWC image when its last axis has C channels, else
        (greyscale only) a batch NHW. The result always has the batch axis.
        """
        a = np.asarray(images)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"preprocess: images must be an array of numbers (uint8 pixels), "
                            f"got {a.dtype} values from a {type(images).__name__}")
        c = self.channels
        if a.ndim == 2 or (a.ndim == 3 and c == 1 and a.shape[-1] != 1):
            a = a[..., None]                                   # HW -> HW1, NHW -> NHW1
        if a.ndim == 3:
            a = a[None]                                        # HWC -> 1HWC
        if a.ndim != 4 or a.shape[-1] != c:
            raise ValueError(f"preprocess: expected images (H, W, {c}) or (N, H, W, {c})"
                             f"{' or (N, H, W)' if c == 1 else ''}, got shape {np.shape(images)}")
        dtype = np.dtype(dtype)
        x = a.astype(dtype)                                   # computed in ``dtype`` throughout
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x * dtype.type(self.scale) - np.array(self.mean, dtype)) / np.array(self.std, dtype)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def deprocess(self, x):
        """Model input (N, C, H, W) or (C, H, W) -> float64 pixels (N, H, W, C) or (H, W, C),
        RGB, in the value scale given to ``preprocess`` (0-255), *not* clipped.
        Greyscale comes back without the channel axis: (N, H, W) or (H, W)."""
        if not isinstance(x, np.ndarray) and hasattr(x, "__cuda_array_interface__"):
            raise TypeError("deprocess takes a NumPy array; call mc.to_numpy(x) first")
        x = np.asarray(x, dtype=np.float64)
        c = self.channels
        if x.ndim not in (3, 4) or x.shape[-3] != c:
            raise ValueError(f"deprocess: expected (N, {c}, H, W) or ({c}, H, W), "
                             f"got shape {x.shape}")
        a = np.moveaxis(x, -3, -1) * np.array(self.std) + np.array(self.mean)
        a = a / self.scale
        if self.channel_order == "BGR":
            a = a[..., ::-1]
        return np.ascontiguousarray(a[..., 0] if c == 1 else a)

    def load(self, path, dtype=np.float32):
        """Read an image file the way this model expects: (1, C, H, W) model input."""
        mode = "L" if self.channels == 1 else "RGB"
        if self.resize is not None:
            img = load_image(path, mode, size=self.resize, center_crop=self.input_size)
        else:
            img = load_image(path, mode, size=self.input_size)
        return self.preprocess(img, dtype=dtype)

    def to_dict(self):
        """Plain JSON-ready dict for the weights' manifest."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["input_size"] = None if self.input_size is None else list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Preprocess.from_dict: unknown keys {sorted(unknown)}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    @classmethod
    def fit(cls, images, scale=1.0 / 255, input_size=None):
        """Per-channel mean/std of a training set (N, H, W[, C]) uint8, at this ``scale``."""
        a = np.asarray(images, dtype=np.float64) * scale
        axes = tuple(range(a.ndim - 1)) if a.ndim == 4 else None
        return cls(mean=a.mean(axis=axes), std=a.std(axis=axes), scale=scale,
                   input_size=input_size)


MAX_INPUT_SIDE = 4096      # pixels of a model input's side: 16 million per channel at most


def _numbers(values, name):
    """A Preprocess constant as a tuple of finite floats, or a ValueError naming it: a NaN
    std would make every input, and every logit, NaN without a word."""
    try:
        out = tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64)))
    except (TypeError, ValueError):
        raise ValueError(f"Preprocess: {name} must be numbers, got {values!r:.80}") from None
    if not out or not all(np.isfinite(out)):
        raise ValueError(f"Preprocess: {name} must be finite numbers, got {values!r:.80}")
    return out


def _sizes(values, name, count):
    """``input_size`` (H, W) or ``resize`` as positive ints up to MAX_INPUT_SIDE."""
    flat = np.atleast_1d(np.asarray(values, dtype=object)).tolist()
    if len(flat) != count or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) or
            isinstance(v, float) and v.is_integer() for v in flat):
        raise ValueError(f"Preprocess: {name} must be {count} whole number(s), "
                         f"got {values!r:.80}")
    out = tuple(int(v) for v in flat)
    if not all(1 <= v <= MAX_INPUT_SIDE for v in out):
        raise ValueError(f"Preprocess: {name} {out} must be between 1 and {MAX_INPUT_SIDE} "
                         f"pixels")
    return out


IMAGENET_TORCHVISION = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                  scale=1.0 / 255, input_size=(224, 224), resize=256)
"""torchvision ImageNet models: RGB in [0, 1], resize 256, centre crop 224."""

EFFICIENTNET_LITE = Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0),
                               scale=1.0, input_size=(224, 224), resize=256)
"""EfficientNet-Lite (TensorFlow): (x - 127) / 128 on 0-255 RGB, resize 256, crop 224."""

CAFFE_BGR = Preprocess(mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
                       channel_order="BGR", scale=1.0, input_size=(224, 224), resize=256)
"""Caffe VGG models: BGR, 0-255, mean pixel subtracted (mean listed in BGR order)."""


def grayscale(size=28, mean=0.0, std=1.0):
    """Greyscale ``size`` x ``size`` input in [0, 1], normalized by one mean/std
    (e.g. ``grayscale(28, 0.2860, 0.3530)`` for Fashion-MNIST statistics)."""
    return Preprocess(mean=(mean,), std=(std,), scale=1.0 / 255, input_size=(size, size))


GRAYSCALE_28 = grayscale(28)
"""28x28 greyscale in [0, 1], no mean/std shift (MNIST, Fashion-MNIST)."""


# ---------------------------------------------------------------- display
def to_displayable(img, mode="clip", percentile=99, value_range=(0, 255)):
    """Any image or map -> float64 in [0, 1] for ``plt.imshow``; the input is not changed.

    "clip":       map ``value_range`` (default 0-255 pixels) to [0, 1] and clip
                  what lies outside — faithful colours, hides out-of-range values;
    "minmax":     (a - min) / (max - min) over the whole array — shows everything,
                  but stretches contrast (a constant array gives zeros);
    "percentile": like minmax between the (100-p)-th and p-th percentiles, then
                  clip — robust to a few extreme values (saliency maps).
    Colour images are normalized jointly over all channels, so hues are kept.
    """
    a = np.asarray(img, dtype=np.float64)
    if mode == "clip":
        lo, hi = value_range
    elif mode == "minmax":
        lo, hi = a.min(), a.max()
    elif mode == "percentile":
        if not 50 < percentile <= 100:
            raise ValueError(f"to_displayable: percentile must be in (50, 100], got {percentile}")
        lo, hi = np.percentile(a, [100 - percentile, percentile])
    else:
        raise ValueError(f"to_displayable: mode must be 'clip', 'minmax' or 'percentile', "
                         f"got {mode!r}")
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


# ----------------------------------------------------------- augmentation
def _as_rng(rng, who):
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"{who}: pass rng=np.random.default_rng(seed) (or an int seed), got {rng!r}")


def random_crop_flip(batch, pad=4, rng=None, flip=True, mode="zeros"):
    """Standard CIFAR augmentation on a batch (N, C, H, W), returned as a new array.

    Each image is padded by ``pad`` pixels (``mode`` "zeros", or "reflect" to
    mirror the border), cut back to H x W at a random offset, and mirrored
    left-right with probability 1/2 if ``flip``. One fancy-indexing gather does
    all N crops and flips at once.
    """
    batch = np.asarray(batch)
    if batch.ndim != 4:
        raise ValueError(f"random_crop_flip: expected a batch (N, C, H, W), "
                         f"got shape {batch.shape}")
    if mode not in ("zeros", "reflect"):
        raise ValueError(f"random_crop_flip: mode must be 'zeros' or 'reflect', got {mode!r}")
    rng = _as_rng(rng, "random_crop_flip")
    n, c, h, w = batch.shape
    widths = ((0, 0), (0, 0), (pad, pad), (pad, pad))
    padded = np.pad(batch, widths, mode="constant" if mode == "zeros" else "reflect")
    rows = rng.integers(0, 2 * pad + 1, size=n)[:, None] + np.arange(h)      # (N, H)
    cols = rng.integers(0, 2 * pad + 1, size=n)[:, None] + np.arange(w)      # (N, W)
    if flip:
        cols = np.where(rng.random(n)[:, None] < 0.5, cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]
