"""Arrays to the pictures the page shows: PNG data URLs, activation mosaics, heat overlays.

Everything here is NumPy in, uint8 pixels (or a ``data:image/png`` URL) out; no model.

    url = png_url(pixels)                       # uint8 (H, W) or (H, W, 3)
    img, geom = mosaic(act)                     # (C, h, w) -> one grey picture of C tiles
    rgb = heat_overlay(pixels, cam)             # a map over the image, jet colours
"""
import base64
import io

import numpy as np
from PIL import Image

from ..plot.attribution import gradient_image
from ..plot.core import normalize_map

__all__ = ["png_url", "to_uint8", "mosaic", "heat_overlay", "signed_image", "grey_image", "shrink",
           "display_scale", "colour_bar"]

MAX_TILE = 48          # activation maps larger than this are block-averaged down for the grid


def to_uint8(img):
    """An image in [0, 1] (float) -> uint8, clipped."""
    return np.clip(np.round(np.asarray(img, dtype=np.float64) * 255), 0, 255).astype(np.uint8)


def png_url(pixels):
    """uint8 (H, W) grey or (H, W, 3) RGB -> ``data:image/png;base64,...``."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise TypeError(f"png_url takes uint8 pixels, got {a.dtype}")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def shrink(maps, max_side=MAX_TILE):
    """Block-average (..., h, w) maps so neither side exceeds ``max_side`` (trailing rows and
    columns that do not fill a block are dropped)."""
    h, w = maps.shape[-2:]
    f = int(np.ceil(max(h, w) / max_side))
    if f <= 1:
        return maps
    h2, w2 = h // f, w // f
    m = maps[..., :h2 * f, :w2 * f]
    return m.reshape(*m.shape[:-2], h2, f, w2, f).mean(axis=(-3, -1))


def mosaic(maps, max_side=MAX_TILE, gap=1, signed=False, cols=None):
    """C maps side by side in one picture: (uint8 image, geometry).

    maps: (C, h, w) (a conv layer's activations), (C, kh, kw, 3) RGB tiles, or (D,) (a dense
    layer: each unit one 1×1 tile). All tiles share one scale: min–max over the whole layer
    (``signed``: grey is 0, white/black the largest |value|), so strong and weak channels
    stay comparable, as in Yosinski's toolbox. Tiles are separated by ``gap`` pixels of a
    dark border. geometry: {"count", "cols", "rows", "tile": [h, w], "gap"} — what the page
    needs to turn a click into a channel index.
    """
    a = np.asarray(maps, dtype=np.float64)
    rgb = a.ndim == 4 and a.shape[-1] == 3
    if a.ndim == 1:
        a = a[:, None, None]
    if rgb:
        tiles = a
    else:
        if a.ndim != 3:
            raise ValueError(f"mosaic takes (C, h, w), (C, h, w, 3) or (D,), got shape {a.shape}")
        a = shrink(a, max_side)
        if signed:
            m = np.abs(a).max() or 1.0
            tiles = 0.5 + 0.5 * a / m
        else:
            lo, hi = a.min(), a.max()
            tiles = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    c, th, tw = tiles.shape[:3]
    if cols is None:
        cols = max(1, int(np.ceil(np.sqrt(c * th / tw))))
    rows = int(np.ceil(c / cols))
    shape = (rows * (th + gap) + gap, cols * (tw + gap) + gap) + ((3,) if rgb else ())
    out = np.full(shape, 0.15)
    for k in range(c):
        r, q = divmod(k, cols)
        top, left = gap + r * (th + gap), gap + q * (tw + gap)
        out[top:top + th, left:left + tw] = tiles[k]
    geom = {"count": int(c), "cols": int(cols), "rows": int(rows), "tile": [int(th), int(tw)],
            "gap": int(gap)}
    return to_uint8(out), geom


def heat_overlay(pixels, heat, alpha=0.5, percentile=99.0):
    """A map (H, W) drawn in jet colours over the image (uint8 (H, W) or (H, W, 3)) -> uint8 RGB.
    The map is scaled by its ``percentile`` of |map|; ``percentile=None``: it is already in [0, 1]."""
    from matplotlib import colormaps
    pix = np.asarray(pixels, dtype=np.float64) / 255
    if pix.ndim == 2:
        pix = np.repeat(pix[..., None], 3, axis=2)
    heat = np.asarray(heat, dtype=np.float64)
    if heat.shape != pix.shape[:2]:
        raise ValueError(f"heat_overlay: map {heat.shape} and image {pix.shape[:2]} differ in size")
    heat = np.clip(heat, 0, 1) if percentile is None else normalize_map(heat, percentile)
    colours = colormaps["jet"](heat)[..., :3]
    return to_uint8((1 - alpha) * pix + alpha * colours)


def signed_image(g):
    """A signed input-space map (C, H, W) -> uint8 picture, grey = 0 (``gradient_image``)."""
    return to_uint8(gradient_image(g))


def grey_image(m, percentile=99.0):
    """A non-negative map (H, W) -> uint8 grey picture scaled by its percentile."""
    return to_uint8(normalize_map(m, percentile))


def display_scale(m, percentile=99.0):
    """The value drawn at the top of a map's colour scale: its ``percentile`` of |m| (the
    largest |m| when that is 0), exactly as ``normalize_map`` scales it."""
    m = np.abs(np.asarray(m, dtype=np.float64))
    scale = float(np.percentile(m, percentile)) if m.size else 1.0
    return scale if scale > 0 else float(m.max() if m.size else 0.0) or 1.0


def colour_bar(kind, hi, label, lo=None):
    """What the page needs to draw a map's colour bar: {"kind": "jet" | "grey" | "signed",
    "lo", "hi", "label"} (a signed map runs from -hi (black) through 0 (grey) to hi)."""
    if kind not in ("jet", "grey", "signed"):
        raise ValueError(f"colour_bar: kind {kind!r} is not jet, grey or signed")
    lo = (-hi if kind == "signed" else 0.0) if lo is None else lo
    return {"kind": kind, "lo": float(lo), "hi": float(hi), "label": label}
