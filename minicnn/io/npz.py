"""minicnn's own weight format: an ``.npz`` of arrays that carries its JSON manifest,
plus a copy of that manifest beside it.

``net.npz`` holds the arrays (a zip of ``.npy`` files, one per state_dict
key, as ``np.savez`` writes them) and ``manifest.json``, the manifest.
``net.json`` is the same manifest plus the sha256 of the ``.npz``, for people
and tools to read::

    {
      "format": "minicnn-weights", "version": 1,
      "architecture": "fashion_net",
      "file": "net.npz", "sha256": "<hex of the .npz>",
      "preprocessing": {"mean": [0.286], "std": [0.353], "channel_order": "gray",
                        "value_range": [0, 1], "input_size": [28, 28]},
      "labels": ["T-shirt/top", "Trouser", ...],
      "accuracy": {"value": 0.91, "on": "Fashion-MNIST test set, 10000 images"},
      "provenance": {"command": "minicnn train fashion_net --epochs 5", "saved": "<UTC time>"},
      "arrays": {"features.0.weight": {"shape": [32, 1, 3, 3], "dtype": "float32"}, ...}
    }

Why the manifest travels inside the ``.npz``: two files cannot be replaced in one
step. A save interrupted between them, or two programs saving the same weights at
once, could leave new arrays beside an old manifest. The ``.npz`` is replaced by a
single rename, so the arrays and their own manifest always arrive together; when
the ``.json`` beside it is stale (its sha256 is not the file's), the manifest
inside wins. Saves into one folder also take turns (a lock on the folder), so the
last writer's pair is the one left, complete.

Files written before the manifest moved inside (the shipped ``weights/``) have
only the ``.json``: its sha256 ties it to exactly one ``.npz``, and a swapped or
damaged file is refused instead of giving silently wrong predictions.

Reading never runs code (object arrays are refused) and checks every ``.npy``
header against the bytes present before allocating anything.
"""
import collections
import contextlib
import datetime
import json
import math
import os
import zipfile

import numpy as np

from .download import atomic_write, sha256_file
from .limits import DEFLATE_MAX_RATIO, check_claim, open_regular

FORMAT = "minicnn-weights"
VERSION = 1
MANIFEST_KEYS = ("architecture", "preprocessing", "labels", "accuracy", "provenance")
MANIFEST_MEMBER = "manifest.json"        # the manifest inside the .npz (arrays are <key>.npy)
MAX_MANIFEST_BYTES = 10_000_000
# All arrays of one file together, uncompressed: at most this many times the file's bytes plus
# MIN_ARRAY_BYTES (float weights barely compress: a real file is close to 1:1), and never more
# than MAX_ARRAY_BYTES (VGG-16, the largest model here, is 0.55 GB).
NPZ_MAX_EXPANSION = 16
MIN_ARRAY_BYTES = 64 << 20
MAX_ARRAY_BYTES = 2 << 30


def manifest_path(path):
    """``weights/net.npz`` -> ``weights/net.json``."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    return (root if ext == ".npz" else path) + ".json"


def _to_numpy(name, value):
    if type(value).__module__.startswith("cupy"):
        value = value.get()  # device -> host copy
    arr = np.asarray(value)
    if not isinstance(name, str):
        raise ValueError(f"state key {name!r:.80} is a {type(name).__name__}; keys are strings "
                         f"like 'features.0.weight'")
    if arr.dtype.hasobject:
        raise ValueError(f"state['{name}'] is not a numeric array (got {type(value).__name__})")
    return arr


def _format_manifest(manifest):
    """JSON with one line per key (and per key of a nested dict), so shapes stay on one line."""
    def one(key, value, indent):
        if isinstance(value, dict) and value and indent == 2:
            inner = ",\n".join(one(k, v, 4) for k, v in value.items())
            return f"{' ' * indent}{json.dumps(key)}: {{\n{inner}\n{' ' * indent}}}"
        return f"{' ' * indent}{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
    return "{\n" + ",\n".join(one(k, v, 2) for k, v in manifest.items()) + "\n}\n"


def _write_npz(f, arrays, manifest_text):
    """What ``np.savez`` does -- one ``<name>.npy`` member per array in a zip -- plus the manifest."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        for name, arr in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
        archive.writestr(MANIFEST_MEMBER, manifest_text)


@contextlib.contextmanager
def _folder_lock(folder):
    """Saves into ``folder`` take turns: an exclusive ``flock`` on the folder itself (POSIX;
    where there is none, saves rely on the manifest inside the file alone)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:                                # a file system without locks
            pass
        yield
    finally:
        os.close(fd)                                   # closing releases the lock


def save_npz(path, state, meta):
    """Write ``state`` ({name: array}) to ``path`` (.npz, the manifest inside) and a copy of
    the manifest to ``<name>.json``.

    ``meta`` must give ``"architecture"``; ``"preprocessing"`` (mean, std,
    channel_order, value_range, input_size), ``"labels"``, ``"accuracy"``
    (value and what it was measured on) and ``"provenance"`` (training command,
    ...) are recorded as given, ``null`` when missing; other keys are kept too.
    ``sha256``, ``arrays`` and ``provenance["saved"]`` are filled in here.
    The ``.npz`` is replaced in one rename, so it is always one save's complete
    arrays with their own manifest; concurrent saves into one folder take turns.
    Returns the manifest dict (what ``<name>.json`` holds).
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"{path}: weight files end in .npz")
    if not isinstance(meta, dict) or not isinstance(meta.get("architecture"), str):
        raise ValueError(f"{path}: meta must be a dict with an 'architecture' name, got {meta!r:.100}")
    arrays = {name: _to_numpy(name, value) for name, value in state.items()}
    provenance = dict(meta.get("provenance") or {})
    provenance.setdefault("saved", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    inside = {"format": FORMAT, "version": VERSION, "architecture": meta["architecture"],
              "file": os.path.basename(path)}
    inside.update({key: meta.get(key) for key in MANIFEST_KEYS[1:]})
    inside["provenance"] = provenance
    inside.update({k: v for k, v in meta.items() if k not in inside and k not in ("arrays", "sha256")})
    inside["arrays"] = {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in arrays.items()}
    try:
        inside_text = _format_manifest(inside)
    except TypeError as err:
        raise ValueError(f"{path}: meta must be JSON-serialisable (lists, not arrays): {err}") from None
    with _folder_lock(os.path.dirname(os.path.abspath(path))):
        atomic_write(path, lambda f: _write_npz(f, arrays, inside_text.encode("utf-8")))
        manifest = _with_sha256(inside, sha256_file(path))
        text = _format_manifest(manifest)
        atomic_write(manifest_path(path), lambda f: f.write(text.encode("utf-8")))
    return manifest


def _with_sha256(manifest, sha256):
    """The manifest with ``"sha256"`` placed right after ``"file"``."""
    out = {}
    for key, value in manifest.items():
        if key != "sha256":
            out[key] = value
        if key == "file":
            out["sha256"] = sha256
    return out


# ---------------------------------------------------------------------------------- reading

def _read_npy(archive, info, path):
    """One ``<key>.npy`` member: its header checked against the member's size before the
    array is allocated; object arrays refused (they would need pickle, i.e. code)."""
    key = info.filename[:-len(".npy")]
    where = f"{path}: array '{key}'"
    if info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024:
        raise ValueError(f"{where} claims {info.file_size} bytes from {info.compress_size} "
                         f"compressed ones, more than any real compression gives (corrupt file)")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} (this reader knows 1.0 and 2.0)")
        except (ValueError, SyntaxError, EOFError) as err:
            raise ValueError(f"{where}: not a valid .npy header: {err}") from None
        if dtype.hasobject:
            raise ValueError(f"{where} holds Python objects (dtype {dtype}), not numbers; "
                             f"loading them would mean running code from the file, so it is refused")
        nbytes = math.prod(shape) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise ValueError(f"{where}: its header declares shape {shape} of {dtype} "
                             f"({nbytes} bytes), but the file holds {info.file_size - f.tell()} "
                             f"bytes for it (truncated or corrupt)")
        buf = bytearray(nbytes)
        got = f.readinto(buf)
        f.read(1)                                      # reading to the end checks the CRC-32
    if got != nbytes:
        raise ValueError(f"{where}: {got} of its {nbytes} bytes are there (truncated)")
    try:
        arr = np.frombuffer(buf, dtype=dtype)
        return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    except ValueError as err:
        raise ValueError(f"{where}: shape {shape} cannot be made: {err}") from None


MAX_MEMBERS = 10_000          # arrays in one weights file (EfficientNet-Lite0 has ~300)


def read_npz_arrays(path):
    """``({key: array}, manifest inside the file or None)`` from a weights ``.npz``, read
    safely: every failure is a ValueError naming the file and the array."""
    path = os.fspath(path)
    with open_regular(path, "load_npz") as f:
        return _read_npz_file(path, f)


def _read_npz_file(path, f):
    size = os.fstat(f.fileno()).st_size
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: not a readable .npz (a zip file): {err} "
                         f"(truncated or corrupt? save it again with save_npz)") from None
    arrays, inside = {}, None
    with archive:
        names = [info.filename for info in archive.infolist()]
        if len(names) > MAX_MEMBERS:
            raise ValueError(f"{path}: the zip holds {len(names):,} members; a weights file has "
                             f"one per tensor, at most {MAX_MEMBERS:,} here (corrupt or hostile file)")
        check_claim(f"{path}: together its {len(names):,} members (uncompressed) of a "
                    f"{size:,}-byte file", sum(info.file_size for info in archive.infolist()),
                    min(MAX_ARRAY_BYTES, NPZ_MAX_EXPANSION * size + MIN_ARRAY_BYTES))
        twice = sorted(n for n, count in collections.Counter(names).items() if count > 1)
        if twice:
            raise ValueError(f"{path}: the zip holds {twice[0]!r:.100} more than once (corrupt file)")
        for info in archive.infolist():
            try:
                if info.filename == MANIFEST_MEMBER:
                    inside = _read_inside_manifest(archive, info, path)
                elif info.filename.endswith(".npy"):
                    arrays[info.filename[:-len(".npy")]] = _read_npy(archive, info, path)
                else:
                    raise ValueError(f"{path}: unexpected member {info.filename!r:.100} "
                                     f"(a weights .npz holds <key>.npy files and {MANIFEST_MEMBER})")
            except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as err:
                raise ValueError(f"{path}: member {info.filename!r:.100} is corrupt: {err}") from None
    return arrays, inside


def _read_inside_manifest(archive, info, path):
    if info.file_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path}: its {MANIFEST_MEMBER} claims {info.file_size} bytes, over "
                         f"the {MAX_MANIFEST_BYTES}-byte limit (corrupt file)")
    try:
        meta = json.loads(archive.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: its {MANIFEST_MEMBER} is not valid JSON: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: its {MANIFEST_MEMBER} is not a minicnn weights manifest")
    return meta


def _check_arrays(path, state, meta):
    """The arrays read are exactly those the manifest lists, with its shapes and dtypes."""
    listed = meta.get("arrays")
    if not isinstance(listed, dict):
        return
    missing = [k for k in listed if k not in state]
    extra = [k for k in state if k not in listed]
    if missing or extra:
        raise ValueError(f"{path}: its manifest lists arrays the file lacks ({', '.join(missing[:5]) or '-'}) "
                         f"or the file holds arrays it does not list ({', '.join(extra[:5]) or '-'})")
    for key, arr in state.items():
        want = listed[key]
        if not isinstance(want, dict) or list(arr.shape) != want.get("shape") or \
                str(arr.dtype) != want.get("dtype"):
            raise ValueError(f"{path}: array '{key}' is {arr.dtype} {list(arr.shape)} but the "
                             f"manifest says {want!r:.100}")


def load_npz(path, expected_arch=None):
    """Read ``path`` (.npz) and its manifest; return ``(state, meta)``.

    The manifest is the ``.json`` beside the file when its sha256 is the file's;
    when it is not (a save was interrupted after the ``.npz`` was replaced, or
    another program saved over it), the manifest inside the ``.npz`` is used. A
    file without a manifest inside (written before it moved there) must match its
    ``.json``'s sha256 or is refused. When ``expected_arch`` is given, the
    manifest must name that architecture.
    """
    path = os.fspath(path)
    json_path = manifest_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path} not found")
    if not os.path.exists(json_path):
        raise FileNotFoundError(f"{path}: its manifest {json_path} is missing (save with save_npz)")
    open_regular(path, "load_npz").close()             # a pipe or /dev/zero: refused, not hashed
    with open_regular(json_path, "load_npz") as f:
        check_claim(f"{json_path}: the manifest", os.fstat(f.fileno()).st_size,
                    MAX_MANIFEST_BYTES)
        try:
            meta = json.loads(f.read().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
            raise ValueError(f"{json_path}: not valid JSON: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a minicnn weights manifest (format should be {FORMAT!r})")
    actual = sha256_file(path)
    mismatch = (f"{path}: sha256 is {actual} but its manifest {json_path} expects "
                f"{str(meta.get('sha256'))[:80]}")
    try:
        state, inside = read_npz_arrays(path)
    except ValueError as err:
        if actual != meta.get("sha256"):
            raise ValueError(f"{mismatch}, and the file is damaged: {err}") from None
        raise
    if actual != meta.get("sha256"):
        if inside is None:
            raise ValueError(f"{mismatch}; the file was changed or belongs to another manifest")
        meta = _with_sha256(inside, actual)  # the .json is stale; the file's own manifest holds
    _check_arrays(path, state, meta)
    if expected_arch is not None and meta.get("architecture") != expected_arch:
        raise ValueError(f"{path}: holds weights for architecture {meta.get('architecture')!r:.80}, "
                         f"expected {expected_arch!r}")
    return state, meta
