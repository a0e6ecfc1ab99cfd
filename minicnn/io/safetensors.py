"""Read and write the safetensors format with NumPy only.

A safetensors file is, in order:

1. 8 bytes: N, the length of the header, an unsigned little-endian integer;
2. N bytes: a UTF-8 JSON object (padded with spaces) mapping each tensor name to
   ``{"dtype": "F32", "shape": [64, 3, 3, 3], "data_offsets": [begin, end]}``,
   plus an optional ``"__metadata__": {str: str}``;
3. the data: each tensor's bytes, C order, little-endian, at ``begin:end``
   counted from the first byte after the header.

There is no code in it to execute, which is the point of the format. Loading
only has to check that every ``[begin, end)`` fits the data, matches
shape x dtype size, and does not overlap another tensor.
"""
import json
import math
import os
import struct

import numpy as np

from .download import atomic_write
from .limits import open_regular
from .paths import check_output_path

# safetensors dtype code -> little-endian NumPy dtype (BF16 is read as raw uint16).
DTYPES = {
    "F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
CODES = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items() if k != "BF16"}
MAX_HEADER_BYTES = 100_000_000   # the reference implementation's limit too
MAX_DIMS = 32


def _brief(value):
    """What a JSON value is, briefly (its repr could be megabytes, or nested past repr's limit)."""
    if isinstance(value, str):
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    if isinstance(value, list) and len(value) <= 8 and \
            all(v is None or isinstance(v, (int, float, str)) for v in value):
        return "[" + ", ".join(map(_brief, value)) + "]"
    if isinstance(value, (list, dict)):
        return f"a JSON {'object' if isinstance(value, dict) else 'list'} of {len(value)} items"
    return repr(value)


def _no_duplicates(pairs):
    """``object_pairs_hook`` for json: a name given twice is an error, not "the last one wins"."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the name {key[:80]!r} appears twice")
        seen[key] = value
    return seen


def read_safetensors_header(path):
    """Return ``(tensors, metadata, data_start)``: the validated header of a safetensors file.

    ``tensors`` maps name -> ``{"dtype", "shape", "data_offsets"}`` and
    ``data_start`` is the file position of byte 0 of the data.
    """
    path = os.fspath(path)
    with open_regular(path, "load_safetensors") as f:
        size = os.fstat(f.fileno()).st_size
        first = f.read(8)
        if len(first) < 8:
            raise ValueError(f"{path}: {size} bytes is too short for a safetensors file (8-byte header length)")
        (n,) = struct.unpack("<Q", first)
        if n > size - 8:
            raise ValueError(f"{path}: header length {n} does not fit a {size}-byte file "
                             f"(not a safetensors file, or truncated)")
        if n > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: header length {n} is over the {MAX_HEADER_BYTES}-byte limit "
                             f"of the format (not a safetensors file, or a hostile one)")
        try:
            header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: the header is not valid UTF-8 JSON: {err}") from None
        except RecursionError:
            raise ValueError(f"{path}: the header's JSON is nested too deeply to be a "
                             f"safetensors header (corrupt or hostile file)") from None
        except ValueError as err:                      # _no_duplicates
            raise ValueError(f"{path}: header: {err}; each tensor name must be unique") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header is a JSON {type(header).__name__}, expected an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings, got {_brief(metadata)}")
    data_len = size - 8 - n
    spans = []
    for name, info in header.items():
        where = f"{path}: tensor '{name[:100]}'"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where}: expected keys dtype, shape, data_offsets; got {_brief(info)}")
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{where}: dtype {_brief(info['dtype'])} is not one of {sorted(DTYPES)}")
        shape, offsets = info["shape"], info["data_offsets"]
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and
                all(type(d) is int and 0 <= d < 2 ** 62 for d in shape)):
            raise ValueError(f"{where}: shape {_brief(shape)} is not a list of at most {MAX_DIMS} "
                             f"integers in [0, 2**62)")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_len):
            raise ValueError(f"{where}: data_offsets {_brief(offsets)} do not lie within the "
                             f"{data_len} data bytes")
        expected = math.prod(shape) * np.dtype(DTYPES[info["dtype"]]).itemsize  # Python ints
        if offsets[1] - offsets[0] != expected:
            raise ValueError(f"{where}: shape {tuple(shape)} of {info['dtype']} needs {expected} bytes, "
                             f"data_offsets {offsets} give {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise ValueError(f"{path}: the bytes of tensors '{a[:100]}' and '{b[:100]}' overlap")
    return header, metadata, 8 + n


def load_safetensors(path, *, dtype=np.float32):
    """Read every tensor of a safetensors file into a dict of NumPy arrays (in header order).

    ``dtype`` is what 16-bit floats become (float32 by default; ``None`` keeps
    float16). BF16 always becomes float32: its bits are the top half of a float32.
    The header's ``__metadata__`` is available from ``read_safetensors_header``.
    """
    path = os.fspath(path)
    tensors, _, start = read_safetensors_header(path)
    state = {}
    with open_regular(path, "load_safetensors") as f:
        for name, info in tensors.items():
            begin, end = info["data_offsets"]
            buf = bytearray(end - begin)
            f.seek(start + begin)
            f.readinto(buf)
            try:
                arr = np.frombuffer(buf, dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
            except ValueError as err:                  # e.g. shape [0, 2**61]: "too big"
                raise ValueError(f"{path}: tensor '{name[:100]}': shape {info['shape']} cannot "
                                 f"be made: {err}") from None
            arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
            if info["dtype"] == "BF16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32).astype(dtype or np.float32, copy=False)
            elif info["dtype"] == "F16" and dtype is not None:
                arr = arr.astype(dtype)
            state[name] = arr
    return state


def save_safetensors(path, state, metadata=None):
    """Write ``{name: array}`` as a safetensors file (atomically: temp file + rename).

    ``metadata`` is an optional ``{str: str}`` stored as ``__metadata__``.
    Arrays are written C-contiguous and little-endian, in the order given.
    """
    path = check_output_path(path, "save_safetensors")
    if metadata is not None and not (isinstance(metadata, dict) and
                                     all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise ValueError(f"{path}: metadata must be a dict of str -> str, got {_brief(metadata)}")
    header, arrays, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name, value in state.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"{path}: tensor name {name!r} is not allowed")
        arr = np.asarray(value)
        native = arr.dtype.newbyteorder("=")
        if native not in CODES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {arr.dtype}, which safetensors cannot "
                             f"store (supported: {sorted(str(d) for d in CODES)})")
        arr = np.asarray(arr, dtype=native.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d
        header[name] = {"dtype": CODES[native], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        arrays.append(arr)
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # data then starts 8-byte aligned

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for arr in arrays:
            f.write(arr.tobytes())

    atomic_write(path, write)
