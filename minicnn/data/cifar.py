"""CIFAR-10 from any of its three usual forms, decoded once and cached.

    x, y = load_cifar10("train")    # uint8 (50000, 32, 32, 3), int64 (50000,)

Forms: the official python archive (pickled batches), the official binary
archive (fixed-size records), and an image-folder tree train/<class>/*.png
(a folder or a .tar.gz). The python batches are unpickled with a restricted
unpickler, so a tampered file cannot run code.
"""
import codecs
import io
import os
import pickle
import posixpath
import re
import tarfile
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.limits import check_claim, open_regular
from ._fetch import check_split, download_file, minicnn_home, progress
from .images import _to_mode

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".webp")
_PY_BATCH = re.compile(r"(data_batch_\d+|test_batch)$")
_BIN_BATCH = re.compile(r"(data_batch_\d+|test_batch)\.bin$")
# What CIFAR-10 can need: a batch is 10,000 images of 3,072 bytes (31 MB as a pickle),
# all of it 60,000 images (184 MB); a file or archive member claiming more is refused
# before it is read.
MAX_MEMBER_BYTES = 64 << 20
MAX_TOTAL_BYTES = 512 << 20


def load_cifar10(split="train", root=None, download=True, cache=True):
    """CIFAR-10 ``split`` -> (images uint8 (N, 32, 32, 3), labels int64 (N,)).

    ``root`` may name a file or a folder holding any of: the python archive
    (cifar-10-python.tar.gz or its cifar-10-batches-py/), the binary archive
    (cifar-10-binary.tar.gz or cifar-10-batches-bin/), or an image-folder tree
    train/<class>/*.png|jpg, test/<class>/... (as a folder or a .tar.gz).
    Labels follow CIFAR10_CLASSES whatever order the folders are listed in.
    An archive or image tree is decoded once and cached as .npz in
    $MINICNN_HOME/datasets/cifar10/, keyed by the source's name, size and mtime.
    """
    check_split(split, "load_cifar10")
    folder = minicnn_home() / "datasets" / "cifar10"
    places = ([Path(root).expanduser()] if root is not None else []) + [folder]
    source = next((s for s in map(_find_cifar_source, places) if s is not None), None)
    if source is None and download:
        try:
            source = download_file(CIFAR10_URL, folder / "cifar-10-python.tar.gz")
        except OSError as err:
            places.append(f"{CIFAR10_URL} ({err})")
    if source is None:
        looked = "\n".join(f"  {p}" for p in places)
        raise FileNotFoundError(
            f"load_cifar10: no CIFAR-10 found; looked in:\n{looked}\nTo get it: download "
            f"{CIFAR10_URL} (or cifar-10-binary.tar.gz, or an image-folder tree "
            "train/<class>/*.png) and pass it as root=")
    arrays = _cifar_arrays(source, split, cache)
    if f"x_{split}" not in arrays:
        raise ValueError(f"load_cifar10: '{source}' holds no {split} images")
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


def _find_cifar_source(place):
    """The file or folder to decode at ``place``, or None."""
    if place.is_file():
        return place
    if not place.is_dir():
        return None
    batch_names = ("test_batch", "test_batch.bin", "data_batch_1", "data_batch_1.bin")
    if any((place / n).is_file() for n in batch_names) or _is_image_tree(place):
        return place
    for name in ("cifar-10-batches-py", "cifar-10-batches-bin",
                 "cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"):
        if (place / name).exists():
            return place / name
    archives = sorted(p for p in place.iterdir() if p.name.endswith((".tar.gz", ".tgz", ".tar")))
    return archives[0] if archives else None


def _is_image_tree(folder):
    return (folder / "train").is_dir() or (folder / "test").is_dir()


def _fingerprint(source):
    """(size, mtime) of a file, or of all files under a folder (total size, latest mtime)."""
    if source.is_file():
        st = source.stat()
        return st.st_size, int(st.st_mtime)
    stats = [p.stat() for p in source.rglob("*") if p.is_file()]
    return sum(s.st_size for s in stats), int(max((s.st_mtime for s in stats), default=0))


def _cifar_arrays(source, split, use_cache):
    """Arrays of ``split`` from the cache, or decoded from ``source`` (then cached)."""
    if not use_cache or (source.is_dir() and not _is_image_tree(source)):
        return _decode_cifar10(source)                     # batch folders read fast as they are
    size, mtime = _fingerprint(source)
    cache_dir = minicnn_home() / "datasets" / "cifar10"
    cache_file = cache_dir / f"{source.name}-{size}-{mtime}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files if k.endswith(split)}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass                                           # damaged cache: decode again
    arrays = _decode_cifar10(source)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        part = cache_file.with_suffix(".part.npz")
        np.savez(part, **arrays)
        os.replace(part, cache_file)
        for stale in cache_dir.glob(f"{source.name}-*.npz"):  # older versions of this source
            if stale != cache_file:
                stale.unlink()
    except OSError as err:
        warnings.warn(f"load_cifar10: could not write the cache '{cache_file}' ({err})")
    return arrays


@contextmanager
def _entries(source):
    """(name, read) pairs for the files of a tar archive or a folder; ``read()`` gives bytes.

    Every file's size is checked against ``MAX_MEMBER_BYTES`` (and all together against
    ``MAX_TOTAL_BYTES``) as it is met, before its bytes are read or skipped; only regular
    files are read (a pipe in the folder would block, a link to /dev/zero never end)."""
    total = 0

    def claim(where, nbytes):
        nonlocal total
        check_claim(f"load_cifar10: '{where}'", nbytes, MAX_MEMBER_BYTES)
        total += nbytes
        check_claim(f"load_cifar10: '{source}' (all its files together)", total, MAX_TOTAL_BYTES)

    if source.is_dir():
        found = []
        for p in sorted(source.rglob("*")):
            if p.is_file():
                claim(p, p.stat().st_size)
                found.append((p.relative_to(source).as_posix(), lambda p=p: _read_file(p)))
        yield found
        return
    try:
        with open_regular(source, "load_cifar10") as f:
            tar = tarfile.open(fileobj=f, mode="r:*")
            members = []
            for m in tar:                              # one header at a time: checked before
                if m.isfile():                         # the next read skips its bytes
                    claim(f"{source}:{m.name}", m.size)
                    members.append(m)
            with tar:
                yield [(m.name, lambda m=m: _read_member(tar, m)) for m in members]
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ValueError(f"load_cifar10: cannot read '{source}' as a tar archive ({err})") from err


def _read_file(path):
    with open_regular(path, "load_cifar10") as f:
        data = f.read(MAX_MEMBER_BYTES + 1)
    check_claim(f"load_cifar10: '{path}'", len(data), MAX_MEMBER_BYTES)
    return data


def _read_member(tar, member):
    data = tar.extractfile(member).read(member.size)
    if len(data) != member.size:
        raise ValueError(f"load_cifar10: '{member.name}' has {len(data)} of its {member.size} "
                         f"bytes (truncated archive)")
    return data


def _decode_cifar10(source):
    """Decode every split found in ``source`` -> {"x_train", "y_train", "x_test", "y_test"}."""
    with _entries(source) as entries:
        return _decode_entries(source, entries)


def _decode_entries(source, entries):
    found = {"python": [], "binary": [], "images": []}
    for name, read in entries:
        parts, base = name.split("/"), posixpath.basename(name)
        if base.startswith("._"):                          # macOS resource forks
            continue
        if _PY_BATCH.match(base):
            found["python"].append((name, read))
        elif _BIN_BATCH.match(base):
            found["binary"].append((name, read))
        elif base.lower().endswith(_IMAGE_EXTS) and parts[-3:-2] in (["train"], ["test"]):
            found["images"].append((name, read))
    kind = next((k for k in ("python", "binary", "images") if found[k]), None)
    if kind is None:
        raise ValueError(f"load_cifar10: '{source}' has no CIFAR-10 batches (data_batch_1, "
                         "test_batch[.bin]) and no train/<class>/ or test/<class>/ images")
    decode = {"python": _python_batch, "binary": _binary_batch, "images": _image_file}[kind]
    pieces = {"train": [], "test": []}                     # (sort key, x, y) per split
    total = len(found[kind]) if kind == "images" else None
    unit = "img" if kind == "images" else "batch"
    with progress(total, f"decoding {source.name}", unit=unit) as bar:
        for name, read in found[kind]:
            split, key, x, y = decode(name, read(), f"{source}:{name}")
            pieces[split].append((key, x, y))
            bar.update(1)
    arrays = {}
    for split, items in pieces.items():
        if items:
            items.sort(key=lambda item: item[0])
            arrays[f"x_{split}"] = np.ascontiguousarray(np.concatenate([i[1] for i in items]))
            arrays[f"y_{split}"] = np.concatenate([i[2] for i in items]).astype(np.int64)
    return arrays


def _batch_split(name):
    base = posixpath.basename(name)
    return ("test" if base.startswith("test") else "train"), int(re.sub(r"\D", "", base) or 0)


def _python_batch(name, raw, where):
    """One pickled batch: {b"data": uint8 (N, 3072) channel planes, b"labels": [N ints]}."""
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data, labels = _built(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    except pickle.UnpicklingError as err:
        raise RefusedPickle(f"load_cifar10: '{where}': {err}") from None
    except (EOFError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"load_cifar10: '{where}' is not a CIFAR-10 python batch "
                         f"({type(err).__name__}: {str(err)[:200]})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape != (len(labels), 3072):
        raise ValueError(f"load_cifar10: '{where}' has data {data.dtype} {data.shape} and "
                         f"{len(labels)} labels; expected uint8 (N, 3072) with N labels")
    split, number = _batch_split(name)
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)          # channel planes -> HWC
    return split, number, x, _checked(labels, where)


def _binary_batch(name, raw, where):
    """One binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32)."""
    if len(raw) % 3073:
        raise ValueError(f"load_cifar10: '{where}' has {len(raw)} bytes, not a multiple of "
                         "3073 (1 label byte + 3072 pixel bytes per image)")
    records = np.frombuffer(raw, np.uint8).reshape(-1, 3073)
    split, number = _batch_split(name)
    x = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return split, number, x, _checked(records[:, 0].astype(np.int64), where)


def _image_file(name, raw, where):
    """One image of a tree <split>/<class>/<file>; its label comes from the class folder."""
    parts = name.split("/")
    split, cls = parts[-3], parts[-2].lower()
    if cls not in CIFAR10_CLASSES:
        raise ValueError(f"load_cifar10: '{where}': folder '{parts[-2]}' is not a CIFAR-10 "
                         f"class; expected one of {', '.join(CIFAR10_CLASSES)}")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            x = np.asarray(_to_mode(img, "RGB"))
    except (OSError, SyntaxError) as err:
        raise ValueError(f"load_cifar10: cannot decode '{where}' ({err})") from err
    if x.shape != (32, 32, 3):
        raise ValueError(f"load_cifar10: '{where}' is {x.shape[1]}x{x.shape[0]}, expected 32x32")
    label = CIFAR10_CLASSES.index(cls)
    return split, (label, parts[-1]), x[None], np.array([label])


def _checked(labels, where):
    if labels.size and not 0 <= labels.min() <= labels.max() <= 9:
        raise ValueError(f"load_cifar10: '{where}' has labels outside 0..9")
    return labels


class RefusedPickle(pickle.UnpicklingError, ValueError):
    """A batch's pickle asks for something a CIFAR-10 batch never holds; nothing was run."""


class _ArrayType:
    """What the pickle gets for ``numpy.ndarray``: a name to hand to ``_reconstruct``, not
    the class -- calling ``numpy.ndarray(shape)`` would allocate any size the file asks."""


class _ArrayRecipe:
    """What ``_reconstruct`` builds: the pickle then calls ``__setstate__`` with the array's
    shape, dtype and bytes, which are checked against each other before the array is made."""
    array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("an array's state must be (version, shape, dtype, "
                                         "fortran, bytes)")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, bytes):
            raise pickle.UnpicklingError("only arrays of numbers are read (no Python objects)")
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"an array's shape must be a tuple of sizes")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes != len(raw):
            raise pickle.UnpicklingError(f"an array claims shape {shape[:8]} of {dtype} "
                                         f"({nbytes:,} bytes) but holds {len(raw):,} bytes")
        order = "F" if fortran else "C"
        self.array = np.frombuffer(raw, dtype).reshape(shape, order=order).copy()


def _reconstruct(subtype, shape, dtype):
    if subtype is not _ArrayType or shape != (0,):
        raise pickle.UnpicklingError("numpy's _reconstruct is allowed only as "
                                     "_reconstruct(ndarray, (0,), dtype), as pickle writes it")
    return _ArrayRecipe()


def _frombuffer(buf, dtype, shape, order):
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("_frombuffer is allowed only on bytes and a numeric dtype")
    return np.frombuffer(buf, dtype).reshape(shape, order=order).copy()   # sizes must agree


def _built(value):
    """The array a batch entry stands for (an ``_ArrayRecipe`` is unwrapped)."""
    if isinstance(value, _ArrayRecipe):
        if value.array is None:
            raise ValueError("an array was declared but never given its bytes")
        return value.array
    return np.asarray(value)


def _numpy_rebuilders():
    """Stand-ins for the few globals a pickled NumPy array refers to (old and new module
    spellings): each checks what it is given, so no call allocates more than the file holds."""
    allowed = {("numpy", "ndarray"): _ArrayType, ("numpy", "dtype"): np.dtype,
               # Python 3 writes bytes in protocol <= 2 as _codecs.encode(str, "latin1")
               ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(package + ".multiarray", "_reconstruct")] = _reconstruct
        allowed[(package + ".numeric", "_frombuffer")] = _frombuffer
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that builds only dicts, lists, bytes, numbers and NumPy arrays.

    A pickle can name any Python function to call while loading (os.system...).
    ``find_class`` is where it asks for one; we answer only for the NumPy array
    rebuilders and refuse everything else, so a tampered file cannot run code.
    """
    ALLOWED = _numpy_rebuilders()

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refused to load global '{module}.{name}': a CIFAR-10 "
                                     "batch holds only dicts, lists, bytes and NumPy arrays")
