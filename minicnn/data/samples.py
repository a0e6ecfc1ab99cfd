"""The sample inputs that ship with minicnn, so demos run offline on a fresh clone.

``weights/samples/fashion_<k>_<name>.png``: the first Fashion-MNIST *test* image
of each class k (Fashion-MNIST is MIT-licensed; written by ``write_fashion_samples``
from the Debian package ``dataset-fashion-mnist``). Photos for the RGB and
ImageNet models come from installed packages at run time (matplotlib's
``grace_hopper.jpg``), never from files of ours.
"""
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["SAMPLES_DIR", "write_fashion_samples", "fashion_samples", "photo_samples"]

_REPO_SAMPLES = Path(__file__).resolve().parents[2] / "weights" / "samples"
_INSTALLED_SAMPLES = Path(sys.prefix) / "share" / "minicnn" / "weights" / "samples"
# the repository's copy, or the one a non-editable install put under <prefix>/share
SAMPLES_DIR = _REPO_SAMPLES if _REPO_SAMPLES.is_dir() or not _INSTALLED_SAMPLES.is_dir() \
    else _INSTALLED_SAMPLES


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def write_fashion_samples(out_dir=SAMPLES_DIR, root=None):
    """Save the first test image of each Fashion-MNIST class as a 28×28 PNG; returns the paths."""
    from . import FASHION_MNIST_CLASSES, load_fashion_mnist
    images, labels = load_fashion_mnist("test", root=root)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for k, name in enumerate(FASHION_MNIST_CLASSES):
        i = int(np.flatnonzero(labels == k)[0])
        path = Path(out_dir) / f"fashion_{k}_{_slug(name)}.png"
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    return paths


def fashion_samples(folder=SAMPLES_DIR):
    """[(uint8 image 28×28, label)] of the shipped Fashion-MNIST samples, by class."""
    files = sorted(Path(folder).glob("fashion_*.png"), key=lambda p: int(p.name.split("_")[1]))
    if not files:
        raise FileNotFoundError(f"no Fashion-MNIST samples in {folder}; "
                                "run minicnn.data.samples.write_fashion_samples()")
    samples = []
    for p in files:
        with Image.open(p) as img:
            samples.append((np.asarray(img.convert("L")), int(p.name.split("_")[1])))
    return samples


def photo_samples():
    """Paths of photos that installed packages provide (matplotlib's grace_hopper.jpg;
    scikit-image's sample photos when it is installed)."""
    paths = []
    try:
        import matplotlib.cbook as cbook
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            paths.append(Path(f.name))
    except (ImportError, OSError, ValueError):
        pass
    try:
        import skimage.data
        folder = Path(skimage.data.__file__).parent
        paths += [folder / n for n in ("chelsea.png", "coffee.png", "astronaut.png")
                  if (folder / n).exists()]
    except ImportError:
        pass
    return paths
