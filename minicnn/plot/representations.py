"""Figures for looking at representations: filters, activation grids, top patches,
nearest neighbours, and embeddings (scatter, thumbnails, grid mosaic).

Images to draw are 0–255 pixels, (H, W), (H, W, 3) or (C, H, W) (C = 1 or 3); filter
images and maps already in [0, 1] are drawn with ``value_range=(0, 1)``.
"""
import numpy as np

from ..backend import to_numpy
from .core import plt, show_image

__all__ = ["tile", "plot_filters", "plot_filter_parts", "plot_filter_probes", "hue_name",
           "edge_arrow", "activation_scale",
           "plot_activation_grid", "plot_activation_grids", "plot_top_patches", "plot_neighbors",
           "plot_embedding", "thumbnail_canvas", "plot_thumbnails", "grid_mosaic",
           "plot_grid_mosaic", "erf_theory_figure"]


def _hwc(img):
    """(C, H, W) with C in {1, 3} -> (H, W[, 3]); (H, W[, 3]) unchanged."""
    img = np.asarray(to_numpy(img))
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img


def tile(maps, ncols=None, pad=1, pad_value=np.nan):
    """(N, h, w[, 3]) -> one (rows·(h+pad), cols·(w+pad)[, 3]) mosaic (NaN between tiles)."""
    maps = np.asarray(maps, dtype=np.float64)
    n, h, w = maps.shape[:3]
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad) + maps.shape[3:], pad_value)
    for k in range(n):
        r, c = divmod(k, ncols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = maps[k]
    return out


def plot_filters(model, layer=None, per_channel=None, title=None, ncols=None, cell=1.0,
                 max_channels=16, width=(5.0, 9.0)):
    """A conv layer's filters (``techniques.filters.filter_images``, same arguments): one tile
    per filter (RGB or grey), or with ``per_channel`` one row per filter and one column per
    input channel (the first ``max_channels``). Tiles are ``cell`` inches wide, the figure
    kept within ``width`` = (min, max) inches so that a few small filters stay readable."""
    from ..techniques.filters import filter_images, first_conv_layer
    layer = layer or first_conv_layer(model)
    f = filter_images(model, layer, per_channel)
    title = title or f"{layer} filters"
    if per_channel is None:                   # filter_images' default
        per_channel = model.get_submodule(layer).weight.shape[1] not in (1, 3)
    if per_channel:                                                     # (F, C, kh, kw)
        c = min(f.shape[1], max_channels)
        tiles, ncols = f[:, :c].reshape(-1, *f.shape[2:]), c
        title += f" ({f.shape[0]} filters × {f.shape[1]} input channels" + \
            (f", first {c} shown)" if c < f.shape[1] else ")")
    else:
        tiles = f
        ncols = ncols or int(np.ceil(np.sqrt(len(f))))
    nrows = int(np.ceil(len(tiles) / ncols))
    mosaic = tile(tiles, ncols=ncols)
    w = min(width[1], max(width[0], cell * ncols))
    fig, ax = plt.subplots(figsize=(w, w / ncols * nrows + 0.4))
    ax.imshow(np.nan_to_num(mosaic, nan=1.0), cmap=None if mosaic.ndim == 3 else "gray",
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return fig


def activation_scale(act, percentile=None):
    """The activation value drawn as full brightness: the layer's maximum, or with
    ``percentile`` that percentile of its positive values (a few hot pixels then no longer
    push every other response into black; larger values are clipped)."""
    a = np.asarray(to_numpy(act), dtype=np.float64)
    positive = a[a > 0]
    if percentile is None or positive.size == 0:
        return float(np.nanmax(a)) if a.size else 1.0
    return float(np.percentile(positive, percentile))


def plot_activation_grid(act, name, per_channel=False, cmap="gray", size=6.0, image=None,
                         percentile=None):
    """All channels of one layer's activation (C, h, w) (or a vector (D,)) in one figure,
    titled with the layer's name and output shape. Scale: 0..max over the whole layer
    (dead channels stay black) — or 0.. the ``percentile`` of its positive values, with a
    colour bar in activation units — or each channel on its own with ``per_channel``.
    image: the input (H, W[, 3], 0–255), drawn on the left, so the maps can be read
    against what they respond to."""
    a = np.asarray(to_numpy(act), dtype=np.float64)
    shape = f"(1, {', '.join(map(str, a.shape))})"
    if a.ndim == 1:
        side = int(np.ceil(np.sqrt(a.size)))
        a = np.pad(a, (0, side * side - a.size), constant_values=np.nan).reshape(1, side, side)
    silent = int((np.nan_to_num(a).reshape(len(a), -1).max(axis=1) <= 0).sum())
    lo, hi = 0.0, 1.0
    if per_channel:
        lo_c = np.nanmin(a, axis=(1, 2), keepdims=True)
        hi_c = np.nanmax(a, axis=(1, 2), keepdims=True)
        a = (a - lo_c) / np.where(hi_c > lo_c, hi_c - lo_c, 1)
    else:
        lo, hi = min(0.0, np.nanmin(a)), activation_scale(a, percentile)
        hi = hi if hi > lo else lo + 1
    mosaic = tile(a)
    aspect = mosaic.shape[0] / mosaic.shape[1]
    if image is None:
        fig, ax = plt.subplots(figsize=(size, size * aspect + 0.4))
    else:
        fig, (ax_in, ax) = plt.subplots(1, 2, figsize=(size * 1.3, size * aspect + 0.4),
                                        gridspec_kw={"width_ratios": [0.45, 1]})
        show_image(ax_in, image, "input")
    im = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=lo, vmax=hi,
                   interpolation="nearest")
    ax.set_axis_off()
    title = f"{name}  {shape}"
    if silent:
        title += f"; {silent} of {len(a)} channels silent for this input"
    ax.set_title(title, fontsize=9)
    if percentile is not None and not per_channel:
        bar = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
        bar.ax.tick_params(labelsize=7)
        bar.set_label(f"activation (top: {percentile:g}th percentile of the positive values)",
                      fontsize=7)
    return fig


def plot_activation_grids(acts, **kwargs):
    """One figure per layer of ``techniques.filters.activation_grids``: {name: figure}."""
    return {name: plot_activation_grid(a, name, **kwargs) for name, a in acts.items()}


def plot_top_patches(result, title=None, cell=1.1, value_range=None):
    """Patches of ``techniques.top_activations.top_patches`` in a row (with the projections
    in a second row when present), each titled with its score. Preprocessed patches are
    drawn min–max unless ``value_range`` is given."""
    patches, proj = result["patches"], result["projections"]
    k = len(patches)
    rows = 2 if proj is not None else 1
    fig, axes = plt.subplots(rows, k, figsize=(cell * k, cell * rows + 0.4), squeeze=False)
    for j in range(k):
        mode = "clip" if value_range else "minmax"
        show_image(axes[0, j], _hwc(patches[j]), f"{result['scores'][j]:.2f}", mode=mode,
                   value_range=value_range or (0, 255))
        if proj is not None:
            show_image(axes[1, j], _hwc(proj[j]), mode="minmax")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_neighbors(queries, database, rows, labels=None, row_names=None, cell=0.9):
    """Each query followed by its neighbours, one row per (query, method).

    queries: (Q, ...) display images; database: (N, ...) display images; rows: dict
    method name -> neighbour indices (Q, k) (e.g. {"features L2": i1, "pixels L2": i2}).
    labels (N_db,) and query labels via ``labels=(db_labels, query_labels)``: a
    neighbour with another label is titled in red.
    """
    names = list(rows)
    q, k = np.asarray(to_numpy(rows[names[0]])).shape
    fig, axes = plt.subplots(q * len(names), k + 1, figsize=(cell * (k + 1), cell * q * len(names)),
                             squeeze=False)
    for a in range(q):
        for m, name in enumerate(names):
            r = a * len(names) + m
            idx = np.asarray(to_numpy(rows[name]))[a]
            show_image(axes[r, 0], _hwc(queries[a]), title=name if a == 0 else None)
            for j, i in enumerate(idx):
                show_image(axes[r, j + 1], _hwc(database[int(i)]))
                if labels is not None and labels[0][int(i)] != labels[1][a]:
                    for spine in axes[r, j + 1].spines.values():
                        spine.set_visible(True)
                        spine.set_edgecolor("red")
                    axes[r, j + 1].set_axis_on()
                    axes[r, j + 1].set_xticks([])
                    axes[r, j + 1].set_yticks([])
    fig.tight_layout()
    return fig


def plot_embedding(Y, labels=None, class_names=None, title=None, size=6.0, s=None):
    """2-D embedding as a scatter, coloured by label (with a legend of class names).
    ``s``: marker area in points² (default 4, larger for fewer than 500 points, up to 40)."""
    Y = np.asarray(to_numpy(Y))
    if s is None:
        s = float(np.clip(2000 / max(len(Y), 1), 4, 40))
    fig, ax = plt.subplots(figsize=(size, size))
    if labels is None:
        ax.scatter(Y[:, 0], Y[:, 1], s=s, c="k", linewidths=0)
    else:
        labels = np.asarray(to_numpy(labels))
        cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
        for c in np.unique(labels):
            m = labels == c
            name = class_names[c] if class_names is not None else str(c)
            ax.scatter(Y[m, 0], Y[m, 1], s=s, color=cmap(int(c) % cmap.N), label=name,
                       linewidths=0)
        ax.legend(markerscale=3, fontsize=7, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def thumbnail_canvas(Y, images, canvas=2000, thumb=None, background=255, overlap=True,
                     return_drawn=False):
    """Karpathy's t-SNE picture: each image pasted at its (scaled) 2-D position, later ones
    on top, on a (canvas, canvas[, 3]) uint8 array. thumb: thumbnail side (default: the
    images' own size). The first axis of Y is horizontal, the second vertical (up).

    overlap=False: the canvas is cut into thumb × thumb cells and each cell shows the first
    image whose position falls in it, the others are left out — every thumbnail whole and
    readable, the layout kept to within one cell. return_drawn: also return the indices of
    the images drawn."""
    Y = np.asarray(to_numpy(Y), dtype=np.float64)
    ims = [_hwc(im) for im in images]
    h, w = ims[0].shape[:2]
    if thumb is not None and thumb != h:
        from PIL import Image
        ims = [np.asarray(Image.fromarray(np.clip(im, 0, 255).astype(np.uint8)).resize(
            (thumb, thumb))) for im in ims]
        h = w = thumb
    color = ims[0].ndim == 3
    out = np.full((canvas, canvas) + ((3,) if color else ()), background, dtype=np.uint8)
    u = (Y - Y.min(0)) / np.where(np.ptp(Y, 0) > 0, np.ptp(Y, 0), 1)
    cols = (u[:, 0] * (canvas - w)).astype(int)
    rows = ((1 - u[:, 1]) * (canvas - h)).astype(int)
    drawn = np.arange(len(ims))
    if not overlap:                         # snap to the cell grid, first image per cell
        first = {}
        for i, cell in enumerate(zip(rows // h, cols // w)):
            first.setdefault(cell, i)
        drawn = np.array(sorted(first.values()), dtype=np.int64)
        rows, cols = rows // h * h, cols // w * w
    for i in drawn:
        out[rows[i]:rows[i] + h, cols[i]:cols[i] + w] = np.clip(ims[i], 0, 255).astype(np.uint8)
    return (out, drawn) if return_drawn else out


def plot_thumbnails(Y, images, canvas=2000, thumb=None, title=None, size=10.0, background=255,
                    overlap=True):
    """Figure of ``thumbnail_canvas`` (images at their t-SNE positions)."""
    c = thumbnail_canvas(Y, images, canvas, thumb, background, overlap)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(c, cmap="gray" if c.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def grid_mosaic(images, rows, cols, side, background=255):
    """Images placed in the cells given by ``techniques.embedding.grid_assignment``:
    one (side·h, side·w[, 3]) uint8 mosaic (empty cells ``background``)."""
    ims = [np.clip(_hwc(im), 0, 255).astype(np.uint8) for im in images]
    h, w = ims[0].shape[:2]
    out = np.full((side * h, side * w) + ims[0].shape[2:], background, dtype=np.uint8)
    for im, r, c in zip(ims, np.asarray(rows), np.asarray(cols)):
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    return out


def plot_grid_mosaic(images, rows, cols, side, title=None, size=10.0):
    """Figure of ``grid_mosaic`` ("the embedding warped into a square")."""
    m = grid_mosaic(images, rows, cols, side)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="gray" if m.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig



def erf_theory_figure(maps, boxes, mass=0.9, cell=2.0):
    """The effective receptive field beside the theoretical one, one column per layer.

    maps: {layer: ERF (H, W)} (``effective_receptive_field``); boxes: {layer: (top, left,
    bottom, right)} of the same unit's geometric field (``centre_unit_boxes``). Top: the ERF
    with the geometric field outlined (cyan) and the pixels holding ``mass`` of it (white
    contour). Bottom: the ERF summed over rows against the geometric field, which weighs
    every pixel it contains alike."""
    from ..techniques.receptive_field import mass_fraction
    fig, axes = plt.subplots(2, len(maps), figsize=(cell * len(maps), 2 * cell + 0.3),
                             squeeze=False, gridspec_kw={"height_ratios": [1, 0.6]})
    for j, (name, m) in enumerate(maps.items()):
        m = np.asarray(m, np.float64)
        top, left, bottom, right = boxes[name]
        ax = axes[0, j]
        ax.imshow(m / (m.max() or 1), cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                   fill=False, edgecolor="cyan", lw=1, ls="--"))
        v = np.sort(m.ravel())[::-1]
        level = v[int(np.searchsorted(np.cumsum(v), mass * v.sum()))]
        ax.contour((m >= level).astype(float), levels=[0.5], colors="white", linewidths=0.8)
        ax.set_axis_off()
        frac = mass_fraction(m, boxes[name], mass)
        ax.set_title(f"{name}\ngeometric {bottom - top}×{right - left} px\n{mass:.0%} of the ERF "
                     f"in {frac:.0%} of it", fontsize=7)
        ax = axes[1, j]
        row = m.sum(axis=0)
        ax.plot(np.arange(len(row)), row / (row.max() or 1), color="C3", lw=1.2, label="effective")
        ax.fill_between([left - 0.5, right - 0.5], 0, 1, color="cyan", alpha=0.3, step=None,
                        label="geometric")
        ax.set_ylim(0, 1.05)
        ax.set_yticks([])
        ax.tick_params(labelsize=6)
        ax.set_xlabel("column (ERF summed over rows)", fontsize=6)
        if j == 0:
            ax.legend(fontsize=6, loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def plot_filter_parts(model, layer=None, title=None, cell=0.55):
    """An RGB layer's filters in three rows of tiles: the whole filter, its luminance part
    and its colour-opponent part (``techniques.filters.colour_parts``), each tile scaled
    symmetrically around zero (grey = 0, so a flat tint is a mean colour, not contrast)."""
    from ..techniques.filters import colour_parts, first_conv_layer
    layer = layer or first_conv_layer(model)
    parts = colour_parts(model, layer)
    lum, col = parts["luminance"], parts["colour"]
    whole = col + lum[..., None]
    order = np.argsort(-parts["share"], kind="stable")        # most luminance first

    peak = np.abs(whole).max(axis=(1, 2, 3), keepdims=True)  # one scale per filter for all
    rows = [("filter W", 0.5 + 0.5 * whole / peak),
            ("luminance part L", np.repeat((0.5 + 0.5 * lum[..., None] / peak), 3, axis=-1)),
            ("colour part C = W − L", 0.5 + 0.5 * col / peak)]
    n = len(lum)
    fig, axes = plt.subplots(3, 1, figsize=(max(5.0, cell * n / 2 + 1), 3 * cell * 2.2 + 0.6))
    for ax, (name, tiles) in zip(axes, rows):
        mosaic = tile(np.clip(tiles[order], 0, 1), ncols=n // 2 if n >= 16 else n)
        ax.imshow(np.nan_to_num(mosaic, nan=1.0), vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(name, fontsize=8)
    share = parts["share"]
    fig.suptitle(title or f"{layer}: luminance carries {np.median(share):.0%} of a filter's "
                          f"energy (median), colour contrast the rest", fontsize=9)
    fig.tight_layout()
    return fig


def hue_name(degrees):
    """The nearest of six hue names for an HSV hue angle (0 red, 60 yellow, 120 green, ...)."""
    names = ("red", "yellow", "green", "cyan", "blue", "magenta")
    return names[int(((degrees + 30) % 360) // 60)]


def edge_arrow(degrees):
    """An arrow pointing along ``degrees`` in image coordinates (0° right, 90° down)."""
    return "→↘↓↙←↖↑↗"[int(((degrees + 22.5) % 360) // 45)]


def plot_filter_probes(probes, weights, min_strength=0.5, ncols=16, cell=0.7):
    """What each RGB filter answers (``techniques.filters.probe_responses``): per filter a
    column of three tiles — the filter (grey = 0, one symmetric scale per filter), its
    rectified response to the light disk on dark (lights where the rim is the edge it
    wants) and to the colour wheel (lights the hues it wants), each map scaled to its own
    maximum (the wheel's response drawn in the wheel's own colours). Columns run by
    preferred hue; a title names the hue (and the dark → light
    direction of the edge, an arrow, when the rim response is concentrated:
    rim_strength >= ``min_strength``). The first column shows the two charts.
    weights: the layer's (F, 3, kh, kw) weights in RGB order."""
    w = np.asarray(weights, dtype=np.float64).transpose(0, 2, 3, 1)
    tiles = 0.5 + 0.5 * w / np.abs(w).max(axis=(1, 2, 3), keepdims=True)
    order = np.argsort(probes["hue"], kind="stable")
    n = len(order)
    blocks = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(3 * blocks, ncols + 1,
                             figsize=(cell * (ncols + 1) + 0.4, 3 * blocks * cell * 1.12 + 0.7))
    for b in range(blocks):
        rows = axes[3 * b:3 * b + 3]
        rows[0, 0].text(0.5, 0.5, "filter\n(3×3)", ha="center", va="center", fontsize=7)
        show_image(rows[1, 0], probes["disk"])
        show_image(rows[2, 0], probes["wheel"])
        if b == 0:
            rows[1, 0].set_title("disk →", fontsize=7)
            rows[2, 0].set_title("wheel →", fontsize=7)
        for j in range(ncols):
            k = b * ncols + j
            for ax in rows[:, j + 1]:
                ax.set_axis_off()
            if k >= n:
                continue
            f = order[k]
            rows[0, j + 1].imshow(tiles[f], interpolation="nearest", vmin=0, vmax=1)
            label = hue_name(probes["hue"][f])
            if probes["rim_strength"][f] >= min_strength:
                label += " " + edge_arrow(probes["rim_angle"][f] + 180)
            rows[0, j + 1].set_title(label, fontsize=6)
            disk, wheel = (probes[k][f] for k in ("disk_response", "wheel_response"))
            rows[1, j + 1].imshow(disk / max(disk.max(), 1e-12), cmap="gray", vmin=0, vmax=1)
            # the wheel seen through the filter: each hue as bright as the filter answers it
            seen = probes["wheel"] / 255 * (wheel / max(wheel.max(), 1e-12))[..., None]
            rows[2, j + 1].imshow(np.clip(seen, 0, 1))
        rows[0, 0].set_axis_off()
    return fig
