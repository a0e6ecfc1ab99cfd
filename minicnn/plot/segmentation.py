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


def class_heatmaps_figure(canvas, probs, stride, window, class_names, classes=None, cell=1.8):
    """The canvas and, per class, the convolutionalized classifier's probability at each window,
    drawn at the window centres (cell (u, v) covers rows s·u … s·u + H − 1 of the canvas).

    canvas: (H, W) uint8; probs: (K, Ho, Wo) from ``score_maps``; stride, window: the fcn's.
    classes: which class indices to show (default: the 4 with the highest peak).
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
    fig, axes = plt.subplots(1, len(classes) + 1, figsize=(cell * (len(classes) + 1), cell + 0.4),
                             squeeze=False)
    show_image(axes[0, 0], canvas, "input")
    for ax, c in zip(axes[0, 1:], classes):
        show_image(ax, canvas)
        ax.imshow(probs[c], cmap="jet", alpha=0.5, vmin=0, vmax=1, extent=extent,
                  interpolation="nearest")
        ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
        ax.set_ylim(canvas.shape[0] - 0.5, -0.5)
        ax.set_title(f"{class_names[c]} (max {probs[c].max():.2f})", fontsize=8)
    fig.tight_layout()
    return fig
