"""Write PyTorch checkpoints (``.pth``) with NumPy only: what ``torch.save(state_dict, f)`` writes.

The reader (``torch_pickle.py``) explains the format; this is the same picture
from the other side. A checkpoint is a zip archive (stored, not compressed)::

    <folder>/data.pkl      the pickle: an OrderedDict name -> tensor recipe
    <folder>/data/0        the raw little-endian bytes of the first array
    <folder>/data/1        ... one file per array ("storage"), named by its key
    <folder>/byteorder     "little"
    <folder>/version       "3" (the zip format's version)

The file is reproducible: the same state (and file name) gives the same bytes. Every record
carries the same fixed date (1980-01-01, the zip format's first), and, like ``torch.save``,
each record's bytes start at a multiple of 64 (padding in an extra field with id "FB"), so
PyTorch's loader can memory-map the arrays (its ``mmap=True`` option).

Each tensor in the pickle is the call ::

    torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())

where ``storage`` is a *persistent id*, the tuple
``("storage", torch.FloatStorage, "0", "cpu", numel)`` that tells the loader to
read ``data/0``. Python's ``pickle.Pickler`` cannot write a reference to
``torch._utils._rebuild_tensor_v2`` without importing torch (it checks that the
name exists), so ``_PickleWriter`` below writes the few opcodes by hand; they are
the ones ``torch.save`` itself emits (``pickletools.dis`` shows them), and PyTorch's
weights-only loading accepts them.
"""
import collections
import os
import struct
import zipfile

import numpy as np

from .download import atomic_write
from .paths import check_output_path

__all__ = ["save_torch", "STORAGE_TYPES", "ALIGNMENT"]

ALIGNMENT = 64                   # torch.save's: each record's data at a multiple of 64 bytes
FIXED_DATE = (1980, 1, 1, 0, 0, 0)

# NumPy dtype -> the torch storage class that holds its elements.
STORAGE_TYPES = {
    "float16": "HalfStorage", "float32": "FloatStorage", "float64": "DoubleStorage",
    "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage",
    "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
}


class _PickleWriter:
    """Pickle protocol 2, the handful of opcodes a state_dict needs (see ``pickletools``)."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")                    # PROTO 2

    def global_(self, module, name):                          # GLOBAL: push module.name
        self.out += b"c" + f"{module}\n{name}\n".encode("ascii")

    def string(self, s):                                      # BINUNICODE: 4-byte length + UTF-8
        data = s.encode("utf-8")
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def integer(self, n):
        if 0 <= n < 256:
            self.out += b"K" + bytes([n])                     # BININT1
        elif -2 ** 31 <= n < 2 ** 31:
            self.out += b"J" + struct.pack("<i", n)           # BININT: signed 4 bytes
        else:
            data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data   # LONG1

    def mark(self):
        self.out += b"("                                      # MARK: start of a tuple / items

    def tuple_(self):
        self.out += b"t"                                      # TUPLE: items since the MARK

    def int_tuple(self, values):
        self.mark()
        for v in values:
            self.integer(int(v))
        self.tuple_()

    def call(self, module, name):
        """Push module.name, then (after the caller pushed MARK + args) ``end_call``."""
        self.global_(module, name)
        self.mark()

    def end_call(self):
        self.tuple_()
        self.out += b"R"                                      # REDUCE: f(*args)

    def empty_ordered_dict(self):
        self.call("collections", "OrderedDict")
        self.end_call()

    def persistent_id(self):
        self.out += b"Q"                                      # BINPERSID: the tuple just built

    def false(self):
        self.out += b"\x89"                                   # NEWFALSE

    def setitems(self):
        self.out += b"u"                                      # SETITEMS: key, value pairs since MARK

    def stop(self):
        self.out += b"."                                      # STOP
        return bytes(self.out)


def _as_array(name, value, path):
    if type(value).__module__.startswith("cupy"):
        value = value.get()
    if hasattr(value, "data") and hasattr(value, "requires_grad"):   # a minicnn Tensor / Parameter
        value = value.data
        if type(value).__module__.startswith("cupy"):
            value = value.get()
    arr = np.asarray(value)
    if arr.dtype.name not in STORAGE_TYPES:
        raise ValueError(f"{path}: state['{name}'] has dtype {arr.dtype}, which save_torch cannot "
                         f"store (supported: {', '.join(STORAGE_TYPES)})")
    return np.asarray(arr, dtype=arr.dtype.newbyteorder("<"), order="C")   # 0-d stays 0-d


def _state_pickle(arrays):
    """The pickle of ``OrderedDict(name -> _rebuild_tensor_v2(storage i, ...))``."""
    p = _PickleWriter()
    p.empty_ordered_dict()
    p.mark()
    for key, (name, arr) in enumerate(arrays.items()):
        p.string(name)
        p.call("torch._utils", "_rebuild_tensor_v2")
        p.mark()                                              # the persistent id of storage `key`
        p.string("storage")
        p.global_("torch", STORAGE_TYPES[arr.dtype.name])
        p.string(str(key))
        p.string("cpu")
        p.integer(arr.size)
        p.tuple_()
        p.persistent_id()
        p.integer(0)                                          # storage offset
        p.int_tuple(arr.shape)                                # size
        p.int_tuple(np.array(arr.strides, dtype=np.int64) // max(arr.itemsize, 1))   # stride
        p.false()                                             # requires_grad
        p.empty_ordered_dict()                                # backward hooks
        p.end_call()
    p.setitems()
    return p.stop()


def save_torch(path, state, folder=None):
    """Write ``state`` ({name: array}) as a PyTorch zip checkpoint, without torch.

    PyTorch, loading it weights-only, gives an ``OrderedDict`` of tensors with
    the same names, shapes, dtypes and bits, ready for ``model.load_state_dict``.
    Arrays may be NumPy, CuPy, or minicnn Parameters; 0-d arrays (BatchNorm's
    ``num_batches_tracked``) stay 0-d. ``folder`` is the archive's top folder
    (default: the file name without extension, as ``torch.save`` does).
    """
    path = check_output_path(path, "save_torch")
    arrays = collections.OrderedDict()
    for name, value in state.items():
        if not isinstance(name, str):
            raise ValueError(f"{path}: state_dict keys must be strings, got {name!r}")
        arrays[name] = _as_array(name, value, path)
    folder = folder or os.path.splitext(os.path.basename(path))[0] or "archive"

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
            _add(archive, f"{folder}/data.pkl", _state_pickle(arrays))
            _add(archive, f"{folder}/byteorder", b"little")
            for key, arr in enumerate(arrays.values()):
                _add(archive, f"{folder}/data/{key}", arr.tobytes())
            _add(archive, f"{folder}/version", b"3\n")

    atomic_write(path, write)


def _add(archive, name, data):
    """One stored record with a fixed date, its data starting at a multiple of ALIGNMENT.

    A record is a 30-byte local header, the name, an "extra" field, then the data; the
    extra field (id "FB", 2-byte length, that many filler bytes) pads the data into place.
    """
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16                     # rw-r--r--, on every machine
    start = archive.fp.tell() + 30 + len(name.encode("utf-8")) + 4
    pad = -start % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    archive.writestr(info, data)
