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
(``os.system`` included). ``_RestrictedUnpickler.find_class`` hands out
minicnn's own small stand-ins for the few names a state_dict needs and refuses
every other name, as torch's own weights-only loading does. The stand-ins only
record what to build; the arrays are made afterwards from the storage bytes
with ``np.lib.stride_tricks.as_strided`` and copied.
"""
import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")

# torch.<Name>Storage -> NumPy dtype of its elements (bfloat16 travels as raw uint16).
STORAGE_DTYPES = {
    "HalfStorage": "float16", "FloatStorage": "float32", "DoubleStorage": "float64",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "UntypedStorage": "uint8",
}


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """The pickle names a global outside the allow-list; nothing was executed."""


@dataclass(frozen=True)
class StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only the element dtype matters."""
    name: str
    dtype: str


@dataclass(frozen=True)
class StorageRef:
    """A persistent id, resolved: ``numel`` elements starting ``offset`` elements into storage ``key``."""
    key: str
    dtype: str
    offset: int
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """What ``_rebuild_tensor_v2`` would have built, as a recipe: a strided view of a storage."""
    storage: StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # unused: requires_grad, backward_hooks, optional metadata
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 got {type(storage).__name__}, expected a storage")
    return TensorRef(storage, int(storage_offset), tuple(int(n) for n in size),
                     tuple(int(s) for s in stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """A Parameter is a tensor with a flag; for weights only the tensor matters."""
    return data


def _latin1_encode(text, encoding="latin1"):
    """How protocol-2 pickles spell ``bytes``; the only codec call allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


ALLOWED_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch.Size": tuple,
    "torch.device": str,
    "_codecs.encode": _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ALLOWED_GLOBALS and storage types.

    ``storages`` collects, per storage key, ``(dtype, numel)`` from the
    persistent ids met, so the legacy reader knows how many bytes follow.
    """

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        full = f"{module}.{name}"
        if full in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[full]
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(
            f"{self.path}: refusing to load the global '{full}' named in the pickle; only "
            f"tensors and plain containers are read (allowed: {', '.join(sorted(ALLOWED_GLOBALS))}, "
            f"torch.*Storage). If you trust this file, load it with torch and save its "
            f"state_dict() alone.")

    def persistent_load(self, pid):
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise UnsafeCheckpointError(
                f"{self.path}: this file holds a whole pickled nn.Module, not a state_dict; "
                f"load it with torch and save model.state_dict() instead.")
        if kind != "storage" or len(pid) not in (5, 6) or not isinstance(pid[1], StorageType):
            raise UnsafeCheckpointError(f"{self.path}: unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        key, numel = str(key), int(numel)
        dtype = storage_type.dtype
        if self.storages.setdefault(key, (dtype, numel))[0] != dtype:
            raise ValueError(f"{self.path}: storage '{key}' is used both as "
                             f"{self.storages[key][0]} and as {dtype}")
        view = pid[5] if len(pid) == 6 else None
        if view is not None:  # legacy storage view: (view_key, offset, numel) into `key`
            return StorageRef(key, dtype, int(view[1]), int(view[2]))
        return StorageRef(key, dtype, 0, numel)


def _unpickle(unpickler, what):
    """Run one restricted load; a malformed pickle becomes a ValueError naming the file."""
    try:
        return unpickler.load()
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, ValueError, OverflowError) as err:
        if isinstance(err, ValueError) and str(err).startswith(unpickler.path):
            raise  # already one of ours
        raise ValueError(f"{unpickler.path}: {what} is not a valid checkpoint pickle "
                         f"(truncated or corrupt?): {type(err).__name__}: {err}") from None


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _read_zip(path):
    """Zip container -> (unpickled object, {storage key: bytes}, byteorder)."""
    try:
        archive = zipfile.ZipFile(path)
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
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
                raise ValueError(f"{path}: record '{name}' is corrupt: {err}") from None

        byteorder = "little"
        if folder + "byteorder" in names:
            byteorder = record(folder + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"{path}: byteorder record says {byteorder!r}, expected little or big")
        unpickler = _RestrictedUnpickler(io.BytesIO(record(pickles[0])), path)
        obj = _unpickle(unpickler, f"record '{pickles[0]}'")
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
        return _unpickle(_RestrictedUnpickler(f, path), what)

    magic = plain("the header (legacy format, or not a torch file at all)")
    if magic != LEGACY_MAGIC_NUMBER:
        raise ValueError(f"{path}: legacy checkpoint magic number is {magic!r}, expected "
                         f"{LEGACY_MAGIC_NUMBER:#x}; not a torch.save file")
    protocol = plain("the protocol version")
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"{path}: legacy protocol version {protocol!r} is not {LEGACY_PROTOCOL_VERSION}")
    plain("sys_info")  # endianness and C type sizes of the saver; storages are little-endian anyway
    unpickler = _RestrictedUnpickler(f, path)
    obj = _unpickle(unpickler, "the main pickle")
    keys = plain("the list of storage keys")
    if not isinstance(keys, list):
        raise ValueError(f"{path}: expected the list of storage keys after the main pickle, got {keys!r:.60}")
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


def _to_array(name, t, blobs, byteorder, dtype, path):
    """Copy the strided view ``t`` out of its storage bytes into a fresh C-contiguous array."""
    st = t.storage
    if st.key not in blobs:
        raise ValueError(f"{path}: tensor '{name}' refers to storage '{st.key}', which the file lacks")
    raw = blobs[st.key]
    item = _itemsize(st.dtype)
    stored = np.dtype("uint16" if st.dtype == "bfloat16" else st.dtype)
    stored = stored.newbyteorder("<" if byteorder == "little" else ">")
    available = min(st.numel, len(raw) // item - st.offset)
    if len(t.shape) != len(t.stride) or any(s < 0 for s in t.stride) or t.offset < 0:
        raise ValueError(f"{path}: tensor '{name}' has shape {t.shape}, stride {t.stride}, "
                         f"offset {t.offset}: not a valid strided view")
    if 0 in t.shape:
        out = np.empty(t.shape, dtype=stored.newbyteorder("="))
    else:
        needed = t.offset + 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
        if needed > available:
            raise ValueError(
                f"{path}: tensor '{name}' (shape {t.shape}, stride {t.stride}, offset {t.offset}) "
                f"needs {needed} {st.dtype} elements of storage '{st.key}' but only {max(available, 0)} "
                f"are there ({len(raw)} bytes): the file is truncated or corrupt")
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
        found = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(obj.items())[:12])
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

    Raises ValueError naming the file (and the tensor) for corrupt, truncated or
    non-checkpoint files; UnsafeCheckpointError (a ValueError) for a pickle that
    names anything beyond tensors and plain containers.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(512)
        if not head:
            raise ValueError(f"{path}: file is empty")
        if head.startswith(b"PK"):
            obj, blobs, byteorder = _read_zip(path)
        elif head[257:262] == b"ustar":
            raise ValueError(f"{path}: tar-based checkpoint of torch < 0.4 is not supported; "
                             f"re-save it with a recent torch")
        else:
            f.seek(0)
            obj, blobs, byteorder = _read_legacy(path, f)
    state = {}
    for name, t in _pick_state_dict(obj, path).items():
        key = name
        if strip_prefix and isinstance(name, str) and name.startswith(strip_prefix):
            key = name[len(strip_prefix):]
        if key in state:
            raise ValueError(f"{path}: stripping {strip_prefix!r} from '{name}' gives the existing key '{key}'")
        state[key] = _to_array(name, t, blobs, byteorder, dtype, path)
    return state
