"""Write PyTorch checkpoints without torch, opcode by opcode, for tests that must run without torch.

The pickle is built from a small tree of markers -- ``Global`` (a name the
unpickler must look up), ``Call`` (REDUCE: call a global with a tuple),
``PersistentId`` (BINPERSID: a reference to a storage kept outside the pickle) --
serialised with protocol 2, the protocol torch.save uses. When torch is
installed, the tests check that ``torch.load`` reads these files too.
"""
import pickle
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

STORAGE_NAMES = {"float16": "HalfStorage", "float32": "FloatStorage", "float64": "DoubleStorage",
                 "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage",
                 "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage"}


@dataclass
class Global:
    module: str
    name: str


@dataclass
class Call:
    func: Global
    args: tuple


@dataclass
class PersistentId:
    value: tuple


def dumps(obj):
    """Protocol-2 pickle of ``obj`` (None, bool, int, str, tuple, list, dict and the markers above)."""
    out = bytearray(b"\x80\x02")

    def put(v):
        if v is None:
            out.extend(b"N")
        elif isinstance(v, bool):
            out.extend(b"\x88" if v else b"\x89")
        elif isinstance(v, int):
            out.extend(b"J" + struct.pack("<i", v))
        elif isinstance(v, str):
            data = v.encode("utf-8")
            out.extend(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(v, tuple):
            out.extend(b"(")
            for x in v:
                put(x)
            out.extend(b"t")
        elif isinstance(v, list):
            out.extend(b"](")
            for x in v:
                put(x)
            out.extend(b"e")
        elif isinstance(v, dict):
            out.extend(b"}(")
            for k, x in v.items():
                put(k)
                put(x)
            out.extend(b"u")
        elif isinstance(v, Global):
            out.extend(f"c{v.module}\n{v.name}\n".encode("ascii"))
        elif isinstance(v, Call):
            put(v.func)
            put(v.args)
            out.extend(b"R")
        elif isinstance(v, PersistentId):
            put(v.value)
            out.extend(b"Q")
        else:
            raise TypeError(f"cannot write {type(v).__name__}")

    put(obj)
    out.extend(b".")
    return bytes(out)


def tensor_call(storage_key, storage, offset, shape, stride, storage_name=None, legacy=False):
    """The ``_rebuild_tensor_v2(...)`` call torch pickles for one tensor."""
    name = storage_name or STORAGE_NAMES[str(storage.dtype)]
    pid = ("storage", Global("torch", name), storage_key, "cpu", int(storage.size))
    if legacy:
        pid += (None,)
    hooks = Call(Global("collections", "OrderedDict"), ())
    return Call(Global("torch._utils", "_rebuild_tensor_v2"),
                (PersistentId(pid), offset, tuple(shape), tuple(stride), False, hooks))


def write_checkpoint(path, storages, tensors, *, legacy=False, folder="archive", byteorder="little",
                     storage_names=None, wrap=None):
    """Write a torch checkpoint.

    - storages: {key: 1-D array}, the flat buffers;
    - tensors: {name: (storage key, offset, shape, stride)}, views into them;
    - storage_names: {key: "BFloat16Storage", ...} to override the type
      derived from the array's dtype (a bfloat16 storage is given as uint16 bits);
    - wrap: e.g. "state_dict" to save ``{wrap: state, "epoch": 3}``.
    """
    storage_names = storage_names or {}
    state = {name: tensor_call(key, storages[key], off, shape, stride, storage_names.get(key), legacy)
             for name, (key, off, shape, stride) in tensors.items()}
    obj = {wrap: state, "epoch": 3} if wrap else state
    if legacy:
        with open(path, "wb") as f:
            f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
            f.write(pickle.dumps(1001, protocol=2))
            f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                                  "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2))
            f.write(dumps(obj))
            keys = sorted(storages)
            f.write(pickle.dumps(keys, protocol=2))
            for key in keys:
                arr = np.asarray(storages[key])
                f.write(struct.pack("<q", arr.size) + arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        return
    order = "<" if byteorder == "little" else ">"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{folder}/data.pkl", dumps(obj))
        z.writestr(f"{folder}/byteorder", byteorder)
        for key, arr in storages.items():
            arr = np.asarray(arr)
            z.writestr(f"{folder}/data/{key}", arr.astype(arr.dtype.newbyteorder(order)).tobytes())
        z.writestr(f"{folder}/version", "3\n")


def rewrite_zip(src, dst, change):
    """Copy a zip, passing each (name, bytes) through ``change``; returning None drops the record."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = change(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)
