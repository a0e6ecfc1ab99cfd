"""Building blocks for every figure: grids of images, heatmap overlays, saving atomically.

Display normalization (``minicnn.data.images.to_displayable``) is kept separate from
clipping: a map is scaled for *looking at* here, never changed in place.
"""
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..backend import to_numpy  # noqa: E402
from ..data.images import to_displayable  # noqa: E402

__all__ = ["plt", "image_grid", "show_image", "overlay", "save_figure", "normalize_map"]


def normalize_map(m, percentile=99.0, signed=False):
    """Scale a map for display: [0, 1] (or [-1, 1] if signed) by its ``percentile`` of |m|."""
    m = np.asarray(to_numpy(m), dtype=np.float64)
    scale = np.percentile(np.abs(m), percentile) if m.size else 1.0
    scale = scale if scale > 0 else (np.abs(m).max() or 1.0)
    out = np.clip(m / scale, -1.0 if signed else 0.0, 1.0)
    return out


def show_image(ax, img, title=None, cmap=None, mode="clip", value_range=(0, 255)):
    """Draw an HxW or HxWx3 image (0-255 scale by default) on ``ax``, axes hidden."""
    img = np.asarray(to_numpy(img))
    disp = to_displayable(img, mode=mode, value_range=value_range)
    ax.imshow(disp, cmap=cmap or ("gray" if disp.ndim == 2 else None), vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def overlay(ax, img, heat, alpha=0.5, cmap="jet", title=None, value_range=(0, 255)):
    """Heatmap ``heat`` (H, W; displayed in [0, 1]) over image ``img`` (H, W[, 3])."""
    show_image(ax, img, value_range=value_range)
    ax.imshow(normalize_map(heat, percentile=100), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    if title:
        ax.set_title(title, fontsize=8)


def image_grid(images, ncols=None, titles=None, cmap=None, mode="minmax", cell=1.2,
               value_range=(0, 255), suptitle=None):
    """A figure with one panel per image (list or array (N, H, W[, 3])); returns the figure."""
    images = [np.asarray(to_numpy(im)) for im in images]
    n = len(images)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < n:
            show_image(ax, images[k], titles[k] if titles else None, cmap, mode, value_range)
        else:
            ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path, dpi=100):
    """Write ``fig`` to ``path`` atomically (temp file, then rename) and close it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=os.path.splitext(path)[1] or ".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)          # mkstemp made it owner-only; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    return path
