"""Figures for the gradient-based techniques: heatmap overlays, the side-by-side panel
(image | saliency | guided backprop | Grad-CAM | guided Grad-CAM | occlusion), Zeiler &
Fergus' deconvnet panels, effective receptive fields and saliency segmentations.

Maps arrive raw from ``minicnn.techniques``; here they are only *scaled for display*:
``normalize_map`` divides by a percentile of |map| and clips at 1, so a few extreme
gradients do not turn everything else black, and the arrays themselves never change.
Every function returns a matplotlib figure (save it with ``save_figure``).
"""
import numpy as np

from ..backend import to_numpy
from ..techniques.deconvnet import deconvnet, deconvnet_projection
from ..techniques.gradcam import grad_cam
from ..techniques.gradients import guided_backprop, saliency
from ..techniques.occlusion import occlusion
from ..techniques.top_activations import top_activations, top_patches
from .core import normalize_map, plt, show_image

__all__ = ["gradient_image", "add_colorbar", "heatmap_overlay", "attribution_maps",
           "attribution_panel", "deconvnet_panel", "erf_figure", "segmentation_figure",
           "occlusion_figure"]


def gradient_image(g, percentile=99.0):
    """A signed gradient (C, H, W) as a picture in [0, 1]: 0.5 + 0.5 · g / p-th percentile of |g|
    (grey = no effect). (H, W, 3) for colour, (H, W) for one channel."""
    g = np.asarray(to_numpy(g), dtype=np.float64)
    img = 0.5 + 0.5 * normalize_map(g, percentile, signed=True)
    return img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)


def add_colorbar(ax, mappable, label=None):
    """A slim colour bar beside ``ax`` (its own axes, so the image keeps its size), labelled
    in the map's units."""
    bar = ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=6)
    bar.solids.set_alpha(1)                    # an overlay's transparency is not the scale's
    if label:
        bar.set_label(label, fontsize=7)
    return bar


def heatmap_overlay(ax, image, heat, *, alpha=0.5, cmap="jet", percentile=99.0, title=None,
                    colorbar=None, value_range=None):
    """Draw ``image`` (H, W[, 3], 0–255) with ``heat`` (H, W) on top.

    By default the map is scaled to its ``percentile`` (display only); ``value_range=(lo, hi)``
    draws it in its own units instead. ``colorbar``: a label, to add a colour bar in those
    units (for a percentile-scaled map, "… / its 99th percentile")."""
    show_image(ax, image)
    if value_range is None:
        m, (lo, hi) = normalize_map(heat, percentile), (0, 1)
    else:
        m, (lo, hi) = np.asarray(to_numpy(heat), dtype=np.float64), value_range
    im = ax.imshow(m, cmap=cmap, alpha=alpha, vmin=lo, vmax=hi)
    if title:
        ax.set_title(title, fontsize=8)
    if colorbar:
        add_colorbar(ax, im, colorbar)
    return im


def _pixels(model, x):
    """Model input (C, H, W) -> displayable pixels (H, W[, 3]) on the 0–255 scale."""
    x = np.asarray(to_numpy(x), dtype=np.float64)
    pre = getattr(model, "preprocess", None)
    if pre is not None and pre.channels == x.shape[0]:
        return pre.deprocess(x)
    lo, hi = x.min(), x.max()
    img = 255 * (x - lo) / (hi - lo if hi > lo else 1)
    return img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)


def attribution_maps(model, x, target, layer=None, occlusion_size=None, occlusion_stride=None,
                     fill="gray", batch_size=32):
    """Every map of the panel for one image x (C, H, W) in model input space:
    {"saliency", "guided backprop", "Grad-CAM", "guided Grad-CAM", "occlusion"} — the
    occlusion map is the drop 1 − p(target) per pixel (high = important), at image size."""
    H, W = np.shape(x)[-2:]
    size = occlusion_size or max(3, min(H, W) // 7)
    stride = occlusion_stride or max(1, size // 2)
    gb = guided_backprop(model, x, target)
    cam = grad_cam(model, x, target, layer)
    occ = occlusion(model, x, target, size, stride, fill, batch_size)
    return {"saliency": saliency(model, x, target), "guided backprop": gb, "Grad-CAM": cam,
            "guided Grad-CAM": gb * cam[None], "occlusion": occ.base_prob - occ.pixel_map}


def attribution_panel(model, images, targets, labels=None, layer=None, cell=2.3, **occlusion_kw):
    """One row per image: image | saliency | guided backprop | Grad-CAM | guided Grad-CAM |
    occlusion. images: model inputs (N, C, H, W) (e.g. ``model.preprocess.preprocess(...)``);
    targets: one class per image; labels: class names (default: indices). The columns are
    named once, on top; each row names its class on the left; the heat maps carry colour
    bars — Grad-CAM and saliency scaled to their 99th percentile, occlusion in its own
    units, the drop of p(class) when the patch covers the pixel."""
    images = np.asarray(to_numpy(images))
    targets = list(np.atleast_1d(targets))
    cols = ["image", "saliency", "guided backprop", "Grad-CAM", "guided Grad-CAM",
            "occlusion:\ndrop in p(class)"]
    fig, axes = plt.subplots(len(images), len(cols), figsize=(cell * len(cols) + 1.2,
                                                              cell * len(images) + 0.4),
                             squeeze=False)
    for r, (row, x, t) in enumerate(zip(axes, images, targets)):
        maps = attribution_maps(model, x, int(t), layer, **occlusion_kw)
        img = _pixels(model, x)
        name = labels[t] if labels is not None else f"class {t}"
        show_image(row[0], img)
        row[0].text(-0.08, 0.5, str(name), transform=row[0].transAxes, rotation=90,
                    ha="right", va="center", fontsize=9)
        sal = row[1].imshow(normalize_map(maps["saliency"]), cmap="gray", vmin=0, vmax=1)
        row[1].set_axis_off()
        add_colorbar(row[1], sal, "|∂y/∂x| / p99" if r == len(images) - 1 else None)
        show_image(row[2], gradient_image(maps["guided backprop"]), value_range=(0, 1))
        heatmap_overlay(row[3], img, maps["Grad-CAM"],
                        colorbar="L / p99" if r == len(images) - 1 else " ")
        show_image(row[4], gradient_image(maps["guided Grad-CAM"]), value_range=(0, 1))
        top = max(float(np.abs(maps["occlusion"]).max()), 1e-3)     # this map's own scale
        heatmap_overlay(row[5], img, maps["occlusion"], value_range=(-top, top), cmap="RdBu_r",
                        colorbar="red: p drops\nblue: p rises" if r == len(images) - 1 else " ")
    for ax, title in zip(axes[0], cols):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _mosaic(tiles, ncols=3, gap=1):
    """Tiles (k, H, W[, 3]) in [0, 1] laid out ncols wide with white gaps: one image."""
    tiles = list(tiles)
    h, w = tiles[0].shape[:2]
    nrows = -(-len(tiles) // ncols)
    out = np.ones((nrows * (h + gap) - gap, ncols * (w + gap) - gap, *tiles[0].shape[2:]))
    for k, t in enumerate(tiles):
        r, c = divmod(k, ncols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = t
    return out


def deconvnet_panel(model, images, layer, channels, k=9, batch_size=64, crop=True):
    """Zeiler & Fergus' Fig. 2 for one layer: for each channel, the deconvnet projections of its
    k strongest activations over ``images`` (N, C, H, W model inputs) next to the images.

    crop=True: each projection starts from the single strongest unit (c, i, j) and is cropped
    to its receptive field, beside the patch that field covers — the paper's layout; the
    projections' mean pairwise correlation r is in the title (on a shallow net the nine come
    out nearly alike: one unit's down-pass is mostly its own filters). crop=False: from the
    channel's whole activation map of each top image (every other channel 0), shown over the
    whole image — where in each image the channel finds its feature."""
    channels = list(np.atleast_1d(channels))
    fig, axes = plt.subplots(len(channels), 2, figsize=(6.0, 2.5 * len(channels)), squeeze=False)

    def project(x, unit):
        return deconvnet_projection(model, x, layer, unit if unit[1] >= 0 else unit[0])
    for (left, right), c in zip(axes, channels):
        if crop:
            top = top_patches(model, images, layer, int(c), k, batch_size=batch_size,
                              project=project)
            maps, pics = top["projections"], top["patches"]
            flat = np.array([np.ravel(p) for p in maps])
            r = np.corrcoef(flat)[~np.eye(len(flat), dtype=bool)].mean() if len(flat) > 1 \
                else 1.0
            what = f"projections (mean r {r:.2f})", "patches"
        else:
            best = top_activations(model, images, layer, [int(c)], k, batch_size)
            pics = np.stack([to_numpy(images[int(i)]) for i in best.indices[0]])
            maps = deconvnet(model, pics, layer=layer, unit=int(c), signal="activation")
            what = "deconvnet of the channel's map", f"its top {len(pics)} images"
        proj = [gradient_image(p) for p in maps]
        pics = [np.clip(_pixels(model, p) / 255, 0, 1) for p in pics]
        for ax, tiles, title in ((left, proj, what[0]), (right, pics, what[1])):
            ax.imshow(_mosaic(tiles), cmap="gray" if tiles[0].ndim == 2 else None,
                      vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(f"{layer} ch {c}:\n{title}", fontsize=8)
    fig.tight_layout()
    return fig


def erf_figure(maps, percentile=100.0):
    """One panel per layer of ``effective_receptive_field``'s {layer: (H, W)}, titled with the
    width of its support, so the growth with depth reads left to right."""
    fig, axes = plt.subplots(1, len(maps), figsize=(1.9 * len(maps), 2.2), squeeze=False)
    for ax, (name, m) in zip(axes[0], maps.items()):
        m = np.asarray(m)
        width = int(np.count_nonzero(m.any(axis=0)))
        ax.imshow(normalize_map(m, percentile), cmap="magma", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"{name}\nsupport {width} px", fontsize=8)
    fig.tight_layout()
    return fig


def segmentation_figure(image, saliency_map, mask, box=None, title=None, map_title="saliency"):
    """image | saliency (colour bar) | the mask: background dimmed, the object's outline in
    green (and the reference box in red, if given)."""
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.0))
    show_image(axes[0], image, title=title or "image")
    im = axes[1].imshow(normalize_map(saliency_map), cmap="gray", vmin=0, vmax=1)
    axes[1].set_axis_off()
    axes[1].set_title(map_title, fontsize=8)
    add_colorbar(axes[1], im, "/ p99")
    mask = np.asarray(mask, bool)
    img = np.asarray(to_numpy(image), dtype=np.float64)
    dim = mask if img.ndim == 2 else mask[..., None]
    show_image(axes[2], np.where(dim, img, 0.3 * img),
               title=f"graph-cut mask ({mask.mean():.0%} of the image)")
    axes[2].contour(mask.astype(float), levels=[0.5], colors="lime", linewidths=1)
    if box is not None:
        x0, y0, x1, y1 = box
        axes[2].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                        edgecolor="red", linewidth=1))
    fig.tight_layout()
    return fig


def occlusion_figure(image, result, labels=None):
    """Zeiler & Fergus' Fig. 7 for one image: the drop of p(target) when the patch covers each
    pixel (the mean over the patches covering it), over the image, with a colour bar in those
    units scaled to this map's own largest change (a confident net may lose only 0.1 —
    on a fixed 0–1 scale that would look uniform); and the most probable class per patch
    position (one colour per class, the legend names them)."""
    fig, axes = plt.subplots(1, 3, figsize=(10.0, 3.2))
    show_image(axes[0], image, title="image")
    name = labels[result.target] if labels is not None else f"class {result.target}"
    drop = result.base_prob - result.pixel_map
    top = max(float(np.abs(drop).max()), 1e-3)
    heatmap_overlay(axes[1], image, drop, alpha=0.55, cmap="RdBu_r", value_range=(-top, top),
                    title=f"drop in p({name}) with the patch there\n"
                          f"(p = {result.base_prob:.2f} without it)",
                    colorbar=f"p({name}) without − with the patch\nred: p drops · blue: p rises")
    classes, inverse = np.unique(result.top_class, return_inverse=True)
    colours = plt.get_cmap("tab10")
    axes[2].imshow(inverse.reshape(result.top_class.shape), cmap=colours, vmin=0, vmax=9.5,
                   interpolation="nearest")
    axes[2].set_axis_off()
    axes[2].set_title("most probable class per position", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(k))
               for k in range(min(len(classes), 10))]
    names = [str(labels[c]) if labels is not None else str(c) for c in classes[:10]]
    axes[2].legend(handles, names, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
