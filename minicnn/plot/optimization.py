"""Figures for image optimization: class visualizations, inversions, dreams, style transfer.

Every image argument is in the model's preprocessed space (N, C, H, W) or (C, H, W), as
the techniques return it; ``preprocess`` (``model.preprocess``) maps it back to pixels.
Without one, images are min-max scaled for display.
"""
import numpy as np

from ..backend import to_numpy
from .core import plt, show_image

__all__ = ["to_pixels", "class_visualization_grid", "class_visualization_panel",
           "inversion_figure", "deepdream_octaves", "style_transfer_panel"]


def to_pixels(image, preprocess=None):
    """One preprocessed image (1, C, H, W) or (C, H, W) -> (H, W[, 3]) pixels for show_image."""
    x = np.asarray(to_numpy(image), dtype=np.float64)
    x = x[0] if x.ndim == 4 else x
    if preprocess is not None:
        return preprocess.deprocess(x)
    x = np.moveaxis(x, 0, -1)
    return x[..., 0] if x.shape[-1] == 1 else x


def _mode(preprocess, mode):
    return mode or ("clip" if preprocess is not None else "minmax")


def class_visualization_grid(images, preprocess=None, class_names=None, seeds=None,
                             mode="percentile", cell=1.6):
    """Rows = classes, columns = seeds: images (K, S, C, H, W) or nested lists.

    mode "percentile" stretches each image's contrast (optimized images are faint).
    """
    rows = [list(r) for r in images]
    k, s = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(k, s, figsize=(cell * s, cell * k + 0.3), squeeze=False)
    for i, row in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            if j >= len(row):
                ax.set_axis_off()
                continue
            title = None
            if i == 0 and seeds is not None:
                title = f"seed {seeds[j]}"
            show_image(ax, to_pixels(row[j], preprocess), title=title, mode=mode)
        if class_names is not None:
            axes[i][0].set_axis_on()
            axes[i][0].set_xticks([])
            axes[i][0].set_yticks([])
            axes[i][0].set_ylabel(str(class_names[i]), fontsize=8)
    fig.suptitle("class visualization: argmax S_c(I) − λ‖I‖²", fontsize=10)
    fig.tight_layout()
    return fig


def class_visualization_panel(images, names, probabilities, preprocess=None, ncols=5,
                              cell=2.2, mode="percentile", suptitle=None):
    """One visualization per class, titled "name  p = …" (the model's softmax on the image).

    images: K preprocessed images (C, H, W) or (1, C, H, W); names, probabilities: K each.
    Rows of ``ncols``; constrained layout keeps every title clear of the row above.
    """
    k = len(images)
    nrows = -(-k // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, (cell + 0.35) * nrows + 0.4),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[k:]:
        ax.set_axis_off()
    for ax, img, name, p in zip(axes.flat, images, names, probabilities):
        show_image(ax, to_pixels(img, preprocess), title=f"{name}  p = {p:.2f}", mode=mode)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def inversion_figure(original, reconstructions, preprocess=None, errors=None, mode=None,
                     cell=2.2, first="original",
                     suptitle="feature inversion: deeper codes keep less of the image"):
    """The original (titled ``first``), then the reconstruction from each layer
    ({layer: image}), left to right; ``errors`` {layer: relative code error} go in the titles."""
    items = [(first, original)] + list(reconstructions.items())
    fig, axes = plt.subplots(1, len(items), figsize=(cell * len(items), cell + 0.7),
                             squeeze=False, layout="constrained")
    for ax, (name, img) in zip(axes[0], items):
        title = name if errors is None or name not in errors else \
            f"{name}\ncode error {100 * errors[name]:.2g}%"
        show_image(ax, to_pixels(img, preprocess), title=title, mode=_mode(preprocess, mode))
    fig.suptitle(suptitle, fontsize=10)
    return fig


def deepdream_octaves(original, history, preprocess=None, mode=None, cell=2.0):
    """The input, then the dream after each octave (smallest first) with its ½‖a‖² gain."""
    octaves = history["octave_images"]
    fig, axes = plt.subplots(1, len(octaves) + 1, figsize=(cell * (len(octaves) + 1), cell + 0.8),
                             squeeze=False, layout="constrained")
    show_image(axes[0][0], to_pixels(original, preprocess), title="input",
               mode=_mode(preprocess, mode))
    for k, (ax, img) in enumerate(zip(axes[0][1:], octaves)):
        gain = history["energy_after"][k] / max(history["energy_before"][k], 1e-12)
        h, w = np.shape(img)[-2:]
        show_image(ax, to_pixels(img, preprocess), mode=_mode(preprocess, mode),
                   title=f"octave {k + 1} ({h}×{w})\n½‖a‖² ×{gain:.2f}")
    fig.suptitle("DeepDream octave progression", fontsize=10)
    return fig


def style_transfer_panel(content, style, result, history, preprocess=None, mode=None, cell=3.0):
    """content | style | result, and the loss curves (total and each term, log scale)."""
    fig, axes = plt.subplots(1, 4, figsize=(cell * 4 + 1.0, cell + 0.4),
                             gridspec_kw=dict(width_ratios=[1, 1, 1, 1.4]))
    for ax, img, title in zip(axes, (content, style, result), ("content", "style", "result")):
        show_image(ax, to_pixels(img, preprocess), title=title, mode=_mode(preprocess, mode))
    ax = axes[3]
    for name in ("loss", "content", "style", "tv"):
        values = np.asarray(history.get(name, []), dtype=np.float64)
        if values.size and np.any(values > 0):       # a term that is 0 (content at init) is a gap
            ax.semilogy(np.where(values > 0, values, np.nan),
                        label="total" if name == "loss" else name)
    ax.set_xlabel("iteration", fontsize=8)
    ax.set_title("loss (terms unweighted)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
