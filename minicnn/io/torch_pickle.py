"""Read PyTorch checkpoints (``.pth``/``.pt``) with NumPy only, never running code from the file.

What ``torch.save(state_dict, f)`` writes
-----------------------------------------
A pickle of the dict of tensors, in which every tensor is the call ::

    torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)

A *storage* is the flat 1-D buffer a tensor views (``stride`` counts elements,
and two tensors may view one storage). It is not inside the pickle: the pickle
holds only a *persistent id* ``("storage", torch.FloatStorage, key, location,
numel)`` and the bytes sit elsewhere, in one of two containers:

* zip (torch >= 1.6): ``<folder>/data.pkl`` is the pickle, ``<folder>/data/<key>``
  the raw bytes of each storage, ``<folder>/byteorder`` says "little" or "big".
  The folder name is free (``archive``, ``squeezenet1_1``, ...).
* legacy: one stream of pickles -- magic number, protocol version, sys_info,
  the main pickle, the sorted list of storage keys -- then every storage in
  that order as an 8-byte little-endian element count and its little-endian bytes.
  Its persistent ids have a sixth field: ``None`` or a view ``(key, offset, numel)``.

Why not ``pickle.load``: unpickling calls whatever functions the pickle names
(``os.system`` included). ``RestrictedUnpickler.find_class`` (restricted_pickle.py)
hands out minicnn's own small stand-ins for the few names a state_dict needs and refuses
every other name, as torch's own weights-only loading does. The stand-ins only
record what to build; the arrays are made afterwards from the storage bytes
with ``np.lib.stride_tricks.as_strided`` and copied.

A hostile file can still ask for a lot: a 600-byte pickle may declare a
stride-0 tensor of 8 GiB, or a list nested so deeply that printing it never
ends. So every stand-in checks the types and ranges of what it is given, the
unpickled object's nesting is bounded (``MAX_NESTING``), and every tensor's
shape, stride and offset are checked against the storage bytes actually in the
file before anything is allocated: no tensor may be larger than the file, nor
all of them together more than ``MAX_EXPANSION`` times the file.
"""
import io
import os
import struct
import zipfile

import numpy as np

from .limits import DEFLATE_MAX_RATIO, check_claim, open_regular
from .restricted_pickle import (RestrictedUnpickler, TensorRef,
                                UnsafeCheckpointError, brief, unpickle)

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
MAX_EXPANSION = 4      # all tensors together: at most this many times the file's bytes
                       # (tensors may share storage, as tied weights do)

__all__ = ["load_torch", "UnsafeCheckpointError"]


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _read_zip(path, f):
    """Zip container (the open file ``f``) -> (unpickled object, {storage key: bytes}, byteorder).

    torch stores its records uncompressed, so together they hold about the file's bytes;
    a record claiming more than ``MAX_EXPANSION`` times the file (plus 1 MiB) is refused
    before it is inflated."""
    size = os.fstat(f.fileno()).st_size
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: starts like a zip checkpoint but cannot be read as a zip "
                         f"(truncated or corrupt download?): {err}") from None
    with archive:
        names = set(archive.namelist())
        pickles = sorted(n for n in names if n.endswith("/data.pkl") and n.count("/") == 1)
        if len(pickles) != 1:
            raise ValueError(f"{path}: a torch zip checkpoint has one '<folder>/data.pkl' record, "
                             f"found {pickles or 'none'} (is this a TorchScript archive or another zip?)")
        folder = pickles[0][:-len("data.pkl")]

        def record(name):
            info = archive.getinfo(name)
            if info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024:
                raise ValueError(f"{path}: record '{brief(name)}' claims {info.file_size} bytes "
                                 f"from {info.compress_size} compressed ones, more than any real "
                                 f"compression gives (corrupt or hostile file)")
            check_claim(f"{path}: record {brief(name)} of a {size:,}-byte checkpoint",
                        info.file_size, MAX_EXPANSION * size + (1 << 20))
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
                raise ValueError(f"{path}: record '{name}' is corrupt: {err}") from None

        byteorder = "little"
        if folder + "byteorder" in names:
            byteorder = record(folder + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"{path}: byteorder record says {brief(byteorder)}, "
                                 f"expected little or big")
        unpickler = RestrictedUnpickler(io.BytesIO(record(pickles[0])), path)
        obj = unpickle(unpickler, f"record '{pickles[0]}'")
        blobs = {}
        for key in unpickler.storages:
            name = f"{folder}data/{key}"
            if name not in names:
                raise ValueError(f"{path}: storage record '{name}' is missing (storage '{key}')")
            blobs[key] = record(name)
    return obj, blobs, byteorder


def _read_legacy(path, f):
    """Legacy stream (file positioned at 0) -> (object, {storage key: bytes}, 'little')."""
    def plain(what):
        return unpickle(RestrictedUnpickler(f, path), what)

    magic = plain("the header (legacy format, or not a torch file at all)")
    if magic != LEGACY_MAGIC_NUMBER:
        raise ValueError(f"{path}: legacy checkpoint magic number is {brief(magic)}, expected "
                         f"{LEGACY_MAGIC_NUMBER:#x}; not a torch.save file")
    protocol = plain("the protocol version")
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"{path}: legacy protocol version {brief(protocol)} is not "
                         f"{LEGACY_PROTOCOL_VERSION}")
    plain("sys_info")  # endianness and C type sizes of the saver; storages are little-endian anyway
    unpickler = RestrictedUnpickler(f, path)
    obj = unpickle(unpickler, "the main pickle")
    keys = plain("the list of storage keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{path}: expected the list of storage keys (strings) after the main "
                         f"pickle, got {brief(keys)}")
    blobs = {}
    for key in keys:
        if key not in unpickler.storages:
            raise ValueError(f"{path}: storage '{key}' is listed but no tensor refers to it")
        dtype, _ = unpickler.storages[key]
        header = f.read(8)
        if len(header) < 8:
            raise ValueError(f"{path}: storage '{key}': the file ends before it starts (truncated?)")
        (count,) = struct.unpack("<q", header)
        nbytes = count * _itemsize(dtype)
        if not 0 <= nbytes <= os.fstat(f.fileno()).st_size - f.tell():
            raise ValueError(f"{path}: storage '{key}' claims {count} {dtype} values, more than "
                             f"the rest of the file holds (truncated or corrupt)")
        blobs[key] = f.read(nbytes)
    return obj, blobs, "little"


def _check_view(name, t, blobs, path, budget):
    """Check tensor ``t`` against the bytes really present, before anything is allocated.

    Its storage must be in the file and hold the ``numel`` elements its id declares; the
    view must lie inside it; and the tensor may not be larger than ``budget`` bytes (what
    is left of the file-size allowance). Returns the tensor's size in bytes.
    """
    st = t.storage
    where = f"{path}: tensor '{name}' (shape {t.shape}, stride {t.stride}, offset {t.offset})"
    if st.key not in blobs:
        raise ValueError(f"{path}: tensor '{name}' refers to storage '{st.key}', which the file lacks")
    raw, item = blobs[st.key], _itemsize(st.dtype)
    available = min(st.numel, len(raw) // item - st.offset)
    numel = int(np.prod(t.shape, dtype=object))            # Python ints: no overflow
    if numel == 0:
        return 0
    size = os.path.getsize(path)
    if numel * item > min(budget, size):
        beyond = (f"more than the whole {size}-byte file" if numel * item > size else
                  f"which would take all tensors together past {MAX_EXPANSION} times the "
                  f"file's {size} bytes")
        raise ValueError(f"{where} declares {numel * item} bytes of {st.dtype}, {beyond} "
                         f"(corrupt or hostile file; refused before allocating anything)")
    needed = t.offset + 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
    if needed > available:
        raise ValueError(
            f"{where} needs {needed} {st.dtype} elements of storage '{st.key}' but only "
            f"{max(available, 0)} are there ({len(raw)} bytes): the file is truncated or corrupt")
    return numel * item


def _to_array(name, t, blobs, byteorder, dtype):
    """Copy the strided view ``t`` (checked by ``_check_view``) out of its storage bytes
    into a fresh C-contiguous array."""
    st = t.storage
    raw, item = blobs[st.key], _itemsize(st.dtype)
    stored = np.dtype("uint16" if st.dtype == "bfloat16" else st.dtype)
    stored = stored.newbyteorder("<" if byteorder == "little" else ">")
    if 0 in t.shape:
        out = np.empty(t.shape, dtype=stored.newbyteorder("="))
    else:
        available = min(st.numel, len(raw) // item - st.offset)
        flat = np.frombuffer(raw, dtype=stored, count=available, offset=st.offset * item)
        view = np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.shape,
                                               strides=[s * item for s in t.stride], writeable=False)
        out = np.array(view, dtype=stored.newbyteorder("="), order="C")
    if st.dtype == "bfloat16":  # bfloat16 = the top 16 bits of a float32
        return (out.astype(np.uint32) << 16).view(np.float32).astype(dtype or np.float32, copy=False)
    if st.dtype == "float16" and dtype is not None:
        return out.astype(dtype)
    return out


def _pick_state_dict(obj, path):
    def is_state(d):
        return isinstance(d, dict) and all(isinstance(v, TensorRef) for v in d.values())

    if is_state(obj):
        return obj
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if is_state(obj.get(key)):
                return obj[key]
        found = ", ".join(f"{brief(k)}: {type(v).__name__}" for k, v in list(obj.items())[:12])
        raise ValueError(f"{path}: no state_dict found; the top-level dict holds {{{found}}} "
                         f"(looked for a dict of tensors, or one under {WRAPPER_KEYS})")
    raise ValueError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")


def load_torch(path, *, dtype=np.float32, strip_prefix=None):
    """Read the tensors of a ``torch.save`` checkpoint into NumPy arrays, without torch.

    Inputs:
    - path: a ``.pth``/``.pt`` file in the zip format (torch >= 1.6) or the legacy format.
    - dtype: what 16-bit float tensors become; float32 by default because NumPy
      is slow and inexact in float16. ``None`` keeps float16 as stored
      (bfloat16, which NumPy lacks, always becomes float32).
    - strip_prefix: e.g. ``"module."`` (what ``nn.DataParallel`` adds) is removed
      from the keys that start with it. Nothing is stripped unless asked.

    Returns: ``{name: array}`` in file order, each array a fresh C-contiguous
    copy (tensors that shared a storage no longer share memory). A checkpoint
    that wraps the state_dict in a dict, under ``"state_dict"``,
    ``"model_state_dict"`` or ``"model"`` (next to e.g. ``"optimizer"``,
    ``"epoch"``), is unwrapped.

    Raises ValueError naming the file (and the tensor) for corrupt, truncated,
    hostile (a tensor larger than the file, absurd nesting) or non-checkpoint
    files, and for keys that are not strings; UnsafeCheckpointError (a ValueError) for a pickle that
    names anything beyond tensors and plain containers.
    """
    path = os.fspath(path)
    with open_regular(path, "load_torch") as f:
        head = f.read(512)
        if not head:
            raise ValueError(f"{path}: file is empty")
        if head.startswith(b"PK"):
            f.seek(0)
            obj, blobs, byteorder = _read_zip(path, f)
        elif head[257:262] == b"ustar":
            raise ValueError(f"{path}: tar-based checkpoint of torch < 0.4 is not supported; "
                             f"re-save it with a recent torch")
        else:
            f.seek(0)
            obj, blobs, byteorder = _read_legacy(path, f)
    chosen = _pick_state_dict(obj, path)
    budget = MAX_EXPANSION * os.path.getsize(path)
    keys = {}
    for name, t in chosen.items():
        if not isinstance(name, str):
            raise ValueError(f"{path}: the state_dict has the key {brief(name)} "
                             f"({type(name).__name__}); tensor names are strings like 'features.0.weight'")
        key = name
        if strip_prefix and name.startswith(strip_prefix):
            key = name[len(strip_prefix):]
        if key in keys:
            raise ValueError(f"{path}: stripping {strip_prefix!r} from '{name}' gives the existing key '{key}'")
        keys[key] = name
        budget -= _check_view(name, t, blobs, path, budget)
    return {key: _to_array(name, chosen[name], blobs, byteorder, dtype) for key, name in keys.items()}
