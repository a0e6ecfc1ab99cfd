"""Datasets and labels: (Fashion-)MNIST, CIFAR-10, ImageNet class names, minibatches.

    x, y = load_fashion_mnist("train")     # uint8 (60000, 28, 28), int64 (60000,)
    x, y = load_cifar10("test")            # uint8 (10000, 32, 32, 3), int64 (10000,)
    names = imagenet_classes()             # 1000 short names, model output order

Data is looked for where the user says (``root``), then in the cache
``$MINICNN_HOME/datasets/<name>`` (default ``~/.cache/minicnn``), then in
system locations (Debian's ``/usr/share/datasets``; ``$MINICNN_DATASET_DIRS``,
folders separated by ``os.pathsep``, replaces them, and an empty value turns
them off), and downloaded into the cache as a last resort (``download=True``).
CIFAR-10 lives in ``minicnn.data.cifar``, image loading, preprocessing and
augmentation in ``minicnn.data.images``; both are re-exported here.
Only NumPy, Pillow and (optionally) tqdm are used.
"""
import math
import os
import re
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..io.limits import DEFLATE_MAX_RATIO, check_claim, gunzip_limited, open_regular
from ._fetch import check_split, download_file, minicnn_home
from .cifar import CIFAR10_CLASSES, load_cifar10
from .images import (CAFFE_BGR, EFFICIENTNET_LITE, GRAYSCALE_28, IMAGENET_TORCHVISION,
                     Preprocess, center_crop, grayscale, load_image, random_crop_flip,
                     resize_short_side, to_displayable, _as_rng)

__all__ = [
    "read_idx", "load_fashion_mnist", "load_mnist", "load_cifar10", "minicnn_home",
    "system_dataset_dirs", "FASHION_MNIST_HOW_TO_GET",
    "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "CIFAR10_CLASSES",
    "imagenet_classes", "imagenet_wnids", "list_imagenet_samples", "iterate_minibatches",
    # from minicnn.data.images
    "load_image", "resize_short_side", "center_crop", "to_displayable", "random_crop_flip",
    "Preprocess", "IMAGENET_TORCHVISION", "EFFICIENTNET_LITE", "CAFFE_BGR", "GRAYSCALE_28",
    "grayscale",
]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"   # apt-get install dataset-fashion-mnist
FASHION_MNIST_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
MNIST_URLS = ("https://yann.lecun.com/exdb/mnist/",
              "https://ossci-datasets.s3.amazonaws.com/mnist/")


# -------------------------------------------------------------------- IDX
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_IDX_BYTES = 256 << 20      # one IDX file, unpacked: (Fashion-)MNIST's largest is 47 MB


def _read_bytes(path):
    """File contents, gunzipped if the file starts with the gzip magic 1f 8b: decompressed
    as a stream, stopping at ``DEFLATE_MAX_RATIO`` times the file (what deflate can give at
    most) or ``MAX_IDX_BYTES``, whichever is smaller -- a bomb stops there."""
    with open_regular(path, "read_idx") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(2) != b"\x1f\x8b":
            check_claim(f"read_idx: '{path}'", size, MAX_IDX_BYTES)
            f.seek(0)
            return f.read()
        f.seek(0)
        limit = min(MAX_IDX_BYTES, DEFLATE_MAX_RATIO * size + 1024)
        return gunzip_limited(f, limit, f"read_idx: '{path}'", head_limit=_declared_size)


def _declared_size(head):
    """The bytes an IDX file whose first bytes are ``head`` says it has (header included);
    a huge number when the header cannot be read (``read_idx`` then says why)."""
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_DTYPES:
        return 1 << 62
    header = 4 + 4 * head[3]
    if len(head) < header:
        return 1 << 62
    dims = struct.unpack(f">{head[3]}I", head[4:header])
    return header + math.prod(dims) * np.dtype(_IDX_DTYPES[head[2]]).itemsize


def read_idx(path):
    """Read an IDX file (raw or .gz) into a NumPy array in native byte order.

    Layout: 2 zero bytes, a type byte (08 uint8, 09 int8, 0B int16, 0C int32,
    0D float32, 0E float64), the number of dimensions, one big-endian uint32
    per dimension, then the values, big-endian, row-major.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"read_idx: '{path}' is not an IDX file: it starts with bytes "
                         f"{raw[:4].hex(' ')}, expected 00 00 <type 08..0e> <ndim>")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header]) if len(raw) >= header else None
    expected = None if dims is None else header + int(np.prod(dims, dtype=object)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"read_idx: '{path}' has {len(raw)} bytes, but its header "
                         f"(shape {dims}, {dtype.name}) needs {expected}: truncated or corrupt")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


# ------------------------------------------------------- (Fashion-)MNIST
_IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


FASHION_MNIST_HOW_TO_GET = ("minicnn data fetch fashion-mnist, or apt-get install "
                            "dataset-fashion-mnist (Debian/Ubuntu), or put the "
                            "four .gz files of github.com/zalandoresearch/fashion-mnist in "
                            "$MINICNN_HOME/datasets/fashion-mnist (default ~/.cache/minicnn)")


def system_dataset_dirs(name):
    """System folders searched for dataset ``name`` ("fashion-mnist"): Debian's, or the
    folders of ``$MINICNN_DATASET_DIRS`` (``os.pathsep``-separated; each may hold the files
    or a ``<name>`` subfolder); an empty ``$MINICNN_DATASET_DIRS`` means none."""
    env = os.environ.get("MINICNN_DATASET_DIRS")
    if env is None:
        return [Path(DEBIAN_FASHION_MNIST)] if name == "fashion-mnist" else []
    dirs = [Path(d).expanduser() for d in env.split(os.pathsep) if d.strip()]
    return [p for d in dirs for p in (d / name, d)]


def load_fashion_mnist(split="train", root=None, download=True):
    """Fashion-MNIST ``split`` -> (images uint8 (N, 28, 28), labels int64 (N,)).
    Looks in ``root``, the cache, /usr/share/datasets/fashion-mnist, then downloads
    (unless ``download=False``: then a missing set is a FileNotFoundError saying how to get it)."""
    return _load_idx_dataset("load_fashion_mnist", "fashion-mnist", split, root, download,
                             system_dataset_dirs("fashion-mnist"), FASHION_MNIST_URLS,
                             FASHION_MNIST_HOW_TO_GET)


def load_mnist(split="train", root=None, download=True):
    """MNIST ``split`` -> (images uint8 (N, 28, 28), labels int64 (N,)).
    Looks in ``root``, then the cache, then downloads."""
    return _load_idx_dataset("load_mnist", "mnist", split, root, download,
                             system_dataset_dirs("mnist"), MNIST_URLS,
                             "download the four .gz IDX files (train-images-idx3-ubyte.gz, ...) "
                             "from the MNIST page and pass their folder as root=")


def _find_idx(folder, stem):
    """``stem``.gz, ``stem``, or ``stem`` with '.idx' (a common unpacked spelling) in folder."""
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_dataset(who, name, split, root, download, system_dirs, urls, how_to_get):
    check_split(split, who)
    cache = minicnn_home() / "datasets" / name
    folders = ([Path(root).expanduser()] if root is not None else []) + [cache] + \
        [Path(d) for d in system_dirs]
    for folder in folders:
        files = [_find_idx(folder, stem) for stem in _IDX_NAMES[split]]
        if all(files):
            return _images_and_labels(*files)
    failures = []
    for url in urls if download else ():
        files = [cache / (stem + ".gz") for stem in _IDX_NAMES[split]]
        try:
            for stem, file in zip(_IDX_NAMES[split], files):
                download_file(url + stem + ".gz", file)
            return _images_and_labels(*files)
        except ValueError as err:                          # downloaded, but not IDX data
            for file in files:
                file.unlink(missing_ok=True)
            failures.append(f"  {url}: {err}")
        except OSError as err:
            failures.append(f"  {url}: {err}")
    looked = "\n".join(f"  {f}" for f in folders)
    tried = "\n".join(failures) if download else "  (download=False)"
    raise FileNotFoundError(f"{who}: no {split} files {', '.join(_IDX_NAMES[split])} "
                            f"(.gz or raw) in:\n{looked}\ndownload:\n{tried}\n"
                            f"To get them: {how_to_get}")


def _images_and_labels(images_path, labels_path, n_classes=10):
    """The images (uint8, 0..255) and labels (integers 0..n_classes-1) of one split; any
    other dtype or range is an error naming the file, never a silent cast (float images
    in [0, 1] cast to uint8 would be all 0 and 1: black)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8:
        values = (f" in [{images.min():g}, {images.max():g}]"
                  if images.size and images.dtype.kind == "f" else "")
        raise ValueError(f"'{images_path}' holds {images.dtype} images{values}; (Fashion-)MNIST "
                         f"images are uint8 pixels 0..255 (IDX type 08). Converting would "
                         f"change the pixels, so it is refused")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"'{images_path}' (shape {images.shape}) and '{labels_path}' "
                         f"(shape {labels.shape}) are not N images (N, H, W) with N labels")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"'{labels_path}' holds {labels.dtype} labels; labels are integers "
                         f"0..{n_classes - 1} (IDX type 08)")
    if labels.size and not 0 <= labels.min() <= labels.max() < n_classes:
        raise ValueError(f"'{labels_path}' has labels from {labels.min()} to {labels.max()}; "
                         f"expected 0..{n_classes - 1}")
    return images, labels.astype(np.int64)


# --------------------------------------------------------- ImageNet labels
@lru_cache(maxsize=None)
def _imagenet_table():
    path = Path(__file__).with_name("labels") / "imagenet_classes.txt"
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    if len(rows) != 1000 or any(len(r) != 3 for r in rows):
        raise ValueError(f"'{path}' should have 1000 lines 'wnid<TAB>short<TAB>synonyms'")
    return tuple(tuple(r) for r in rows)


def imagenet_classes(full=False):
    """The 1000 ImageNet class names in model output order: short names ("tabby"),
    or with ``full=True`` all synonyms ("tabby, tabby cat"). Note: a few short names
    repeat ("crane" is a bird, 134, and a machine, 517)."""
    return [row[2] if full else row[1] for row in _imagenet_table()]


def imagenet_wnids():
    """The 1000 WordNet ids ("n02123045") in model output order."""
    return [row[0] for row in _imagenet_table()]


def list_imagenet_samples(directory):
    """Files ``nXXXXXXXX_<anything>`` in ``directory`` (sorted) -> [(path, class index)],
    the index read from the wnid. Other files are ignored; an unknown wnid is an error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"list_imagenet_samples: no folder '{directory}'")
    index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    samples = []
    for path in sorted(directory.iterdir()):
        match = re.match(r"(n\d{8})_", path.name)
        if match and path.is_file():
            if match.group(1) not in index:
                raise ValueError(f"list_imagenet_samples: '{path}' names wnid {match.group(1)}, "
                                 "which is not one of the 1000 ImageNet classes")
            samples.append((path, index[match.group(1)]))
    return samples


# ------------------------------------------------------------ minibatches
def iterate_minibatches(n, batch_size, shuffle=False, rng=None, drop_last=False):
    """Yield index arrays covering range(n) in batches of ``batch_size`` (the last
    one smaller unless ``drop_last``); in a random order if ``shuffle`` (needs ``rng``)."""
    if batch_size < 1:
        raise ValueError(f"iterate_minibatches: batch_size must be >= 1, got {batch_size}")
    order = _as_rng(rng, "iterate_minibatches").permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]
