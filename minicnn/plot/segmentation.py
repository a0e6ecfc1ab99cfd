"""Figures for image-to-image networks: label maps in colour, and the FCN's class heatmaps.

    fig = segmentation_figure(images, truth, {"SegNet": p1, "U-Net": p2}, SEG_CLASSES)
    fig = class_heatmaps_figure(canvas, probs, fcn.stride, fcn.window, labels)
"""
import numpy as np

from ..backend import to_numpy
from .core import plt, show_image

__all__ = ["label_colors", "colorize", "segmentation_figure", "class_heatmaps_figure"]


def label_colors(num_classes):
    """(K, 3) RGB in [0, 1]: class 0 (background) black, the others from tab10/tab20."""
    cmap = plt.get_cmap("tab10" if num_classes <= 11 else "tab20")
    return np.array([(0.0, 0.0, 0.0)] + [cmap(k % cmap.N)[:3] for k in range(num_classes - 1)])


def colorize(labels, num_classes):
    """Label map (H, W) ints -> RGB image (H, W, 3) uint8."""
    labels = np.asarray(to_numpy(labels))
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"colorize: labels must lie in [0, {num_classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return (label_colors(num_classes)[labels] * 255).round().astype(np.uint8)


def segmentation_figure(images, truth, predictions, class_names, scores=None, cell=1.6):
    """Rows = samples; columns = image | ground truth | one prediction per model.

    images: (N, H, W) uint8; truth: (N, H, W) labels; predictions: {name: (N, H, W) labels};
    class_names: K names (the legend); scores: optional {name: text} under each column title.
    """
    images, truth = np.asarray(images), np.asarray(truth)
    preds = {name: np.asarray(to_numpy(p)) for name, p in predictions.items()}
    for name, p in preds.items():
        if p.shape != truth.shape:
            raise ValueError(f"segmentation_figure: prediction {name!r} has shape {p.shape}, "
                             f"ground truth {truth.shape}")
    k = len(class_names)
    cols = ["image", "ground truth"] + list(preds)
    n = len(images)
    fig, axes = plt.subplots(n, len(cols), figsize=(cell * len(cols), cell * n + 0.8),
                             squeeze=False)
    for i in range(n):
        show_image(axes[i, 0], images[i])
        show_image(axes[i, 1], colorize(truth[i], k))
        for j, p in enumerate(preds.values()):
            show_image(axes[i, 2 + j], colorize(p[i], k))
    for j, name in enumerate(cols):
        extra = (scores or {}).get(name)
        axes[0, j].set_title(name + (f"\n{extra}" if extra else ""), fontsize=8)
    colors = label_colors(k)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c]) for c in range(k)]
    fig.legend(handles, class_names, loc="lower center", ncol=min(k, 6), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def class_heatmaps_figure(canvas, probs, stride, window, class_names, classes=None, cell=2.2,
                          labels=None, threshold=None, items=None):
    """The canvas and, per class, the convolutionalized classifier's probability at each window,
    drawn at the window centres (cell (u, v) covers rows s·u … s·u + H − 1 of the canvas),
    all on one colour scale, 0 to 1, with one colour bar.

    canvas: (H, W) uint8; probs: (K, Ho, Wo) from ``score_maps``; stride, window: the fcn's.
    classes: which class indices to show (default: the 4 with the highest peak).
    labels: (Ho, Wo) from ``window_labels`` (0 = background, k + 1 = class k), drawn last
    as a label map with ``threshold`` in its title. items: [(class, (top, left, bottom,
    right))] of the true items, outlined on the canvas and named.
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"class_heatmaps_figure: probs must be (K, Ho, Wo), got {probs.shape}")
    if classes is None:
        classes = list(np.argsort(-probs.reshape(len(probs), -1).max(axis=1))[:4])
    (sh, sw), (h, w) = stride, window
    ho, wo = probs.shape[1:]
    # extent of the grid of window centres, each cell sh × sw pixels wide
    extent = ((w - 1) / 2 - sw / 2, (w - 1) / 2 + (wo - 0.5) * sw,
              (h - 1) / 2 + (ho - 0.5) * sh, (h - 1) / 2 - sh / 2)
    panels = len(classes) + 1 + (labels is not None)
    fig, axes = plt.subplots(1, panels, figsize=(cell * panels + 0.6, cell + 0.5),
                             squeeze=False)
    show_image(axes[0, 0], canvas, "input" + (" (true items)" if items else ""))
    for k, (top, left, bottom, right) in items or ():
        axes[0, 0].add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left,
                                           bottom - top, fill=False, color="yellow", lw=0.8))
        axes[0, 0].text(left, top, str(class_names[k]).split("/")[0], color="yellow",
                        fontsize=6, va="bottom")

    def frame(ax):
        ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
        ax.set_ylim(canvas.shape[0] - 0.5, -0.5)
    heat = None
    for ax, c in zip(axes[0, 1:], classes):
        show_image(ax, canvas)
        heat = ax.imshow(probs[c], cmap="jet", alpha=0.5, vmin=0, vmax=1, extent=extent,
                         interpolation="nearest")
        frame(ax)
        ax.set_title(f"{class_names[c]} (max {probs[c].max():.2f})", fontsize=8)
    if labels is not None:
        ax = axes[0, -1]
        colors = label_colors(len(probs) + 1)
        shown = np.concatenate([colors[np.asarray(labels)], (np.asarray(labels) > 0)[..., None]
                                * 0.85], axis=-1)
        show_image(ax, 0.4 * np.asarray(canvas, np.float64))
        ax.imshow(shown, extent=extent, interpolation="nearest")
        frame(ax)
        title = "top class per window" + (f"\n(background: p < {threshold:g})"
                                          if threshold is not None else "")
        ax.set_title(title, fontsize=8)
        present = [int(k) for k in np.unique(labels) if k > 0]
        ax.legend([plt.Rectangle((0, 0), 1, 1, color=colors[k]) for k in present],
                  [class_names[k - 1] for k in present], fontsize=6, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0), frameon=False)
    if heat is not None:                   # one scale for every class map: one bar
        bar = fig.colorbar(heat, ax=axes[0, len(classes)], fraction=0.046, pad=0.03)
        bar.solids.set_alpha(1)
        bar.ax.tick_params(labelsize=6)
        bar.set_label("p(class), every map", fontsize=7)
    fig.tight_layout()
    return fig
