"""minicnn's own weight format: an ``.npz`` of arrays plus a JSON manifest beside it.

``weights/fashion_net.npz`` holds the arrays (``np.savez``: a zip of ``.npy``
files, one per state_dict key, read back with ``allow_pickle=False`` so loading
can never run code). ``weights/fashion_net.json`` says what they are::

    {
      "format": "minicnn-weights", "version": 1,
      "architecture": "fashion_net",
      "file": "fashion_net.npz", "sha256": "<hex of the .npz>",
      "arrays": {"features.0.weight": {"shape": [32, 1, 3, 3], "dtype": "float32"}, ...},
      "preprocessing": {"mean": [0.286], "std": [0.353], "channel_order": "gray",
                        "value_range": [0, 1], "input_size": [28, 28]},
      "labels": ["T-shirt/top", "Trouser", ...],
      "accuracy": {"value": 0.91, "on": "Fashion-MNIST test set, 10000 images"},
      "provenance": {"command": "minicnn train fashion_net --epochs 5", "saved": "<UTC time>"}
    }

The sha256 ties the manifest to exactly one ``.npz``: a swapped or damaged file
is refused at load time instead of giving silently wrong predictions.
"""
import datetime
import json
import os
import zipfile

import numpy as np

from .download import atomic_write, sha256_file

FORMAT = "minicnn-weights"
VERSION = 1
MANIFEST_KEYS = ("architecture", "preprocessing", "labels", "accuracy", "provenance")


def manifest_path(path):
    """``weights/net.npz`` -> ``weights/net.json``."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    return (root if ext == ".npz" else path) + ".json"


def _to_numpy(name, value):
    if type(value).__module__.startswith("cupy"):
        value = value.get()  # device -> host copy
    arr = np.asarray(value)
    if arr.dtype == object:
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


def _write_npz(f, arrays):
    """What ``np.savez`` does: one ``<name>.npy`` member per array in a zip."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        for name, arr in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save_npz(path, state, meta):
    """Write ``state`` ({name: array}) to ``path`` (.npz) and its manifest to ``<name>.json``.

    ``meta`` must give ``"architecture"``; ``"preprocessing"`` (mean, std,
    channel_order, value_range, input_size), ``"labels"``, ``"accuracy"``
    (value and what it was measured on) and ``"provenance"`` (training command,
    ...) are recorded as given, ``null`` when missing; other keys are kept too.
    ``sha256``, ``arrays`` and ``provenance["saved"]`` are filled in here.
    Returns the manifest dict.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"{path}: weight files end in .npz")
    if not isinstance(meta, dict) or not isinstance(meta.get("architecture"), str):
        raise ValueError(f"{path}: meta must be a dict with an 'architecture' name, got {meta!r:.100}")
    arrays = {name: _to_numpy(name, value) for name, value in state.items()}
    atomic_write(path, lambda f: _write_npz(f, arrays))
    provenance = dict(meta.get("provenance") or {})
    provenance.setdefault("saved", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    manifest = {"format": FORMAT, "version": VERSION, "architecture": meta["architecture"],
                "file": os.path.basename(path), "sha256": sha256_file(path)}
    manifest.update({key: meta.get(key) for key in MANIFEST_KEYS[1:]})
    manifest["provenance"] = provenance
    manifest.update({k: v for k, v in meta.items() if k not in manifest and k != "arrays"})
    manifest["arrays"] = {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in arrays.items()}
    try:
        text = _format_manifest(manifest)
    except TypeError as err:
        raise ValueError(f"{path}: meta must be JSON-serialisable (lists, not arrays): {err}") from None
    atomic_write(manifest_path(path), lambda f: f.write(text.encode("utf-8")))
    return manifest


def load_npz(path, expected_arch=None):
    """Read ``path`` (.npz) and its manifest; return ``(state, meta)``.

    Checks that the .npz's sha256 is the one in the manifest and, when
    ``expected_arch`` is given, that the manifest names that architecture.
    """
    path = os.fspath(path)
    json_path = manifest_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path} not found")
    if not os.path.exists(json_path):
        raise FileNotFoundError(f"{path}: its manifest {json_path} is missing (save with save_npz)")
    with open(json_path, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{json_path}: not valid JSON: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a minicnn weights manifest (format should be {FORMAT!r})")
    actual = sha256_file(path)
    if actual != meta.get("sha256"):
        raise ValueError(f"{path}: sha256 is {actual} but its manifest {json_path} expects "
                         f"{meta.get('sha256')}; the file was changed or belongs to another manifest")
    if expected_arch is not None and meta.get("architecture") != expected_arch:
        raise ValueError(f"{path}: holds weights for architecture {meta.get('architecture')!r}, "
                         f"expected {expected_arch!r}")
    with np.load(path, allow_pickle=False) as data:
        state = {name: data[name] for name in data.files}
    return state, meta
