"""What travels with an exported model: its architecture, class labels and preprocessing.

Each export format carries the same three entries:

    .onnx         the model's ``metadata_props``           (strings; labels and preprocessing JSON)
    .safetensors  the header's ``__metadata__``            (the same strings)
    .pth          a JSON file beside it, ``net.pth.json``   (plain JSON, with the .pth's sha256)

``read_metadata(path)`` reads any of them back as plain data, and ``Preprocess.from_dict``
turns the preprocessing into the object that prepares images::

    meta = mc.io.read_metadata("fashion_net.onnx")
    labels = meta["labels"]                                   # ['T-shirt/top', 'Trouser', ...]
    pre = mc.data.Preprocess.from_dict(meta["preprocessing"])  # mean, std, scale, input size...
    x = pre.load("shoe.png")                                  # (1, 1, 28, 28) model input
"""
import json
import os

from .download import atomic_write, sha256_file

__all__ = ["model_metadata", "metadata_strings", "read_metadata", "write_sidecar",
           "sidecar_path", "KEYS"]

KEYS = ("architecture", "labels", "preprocessing")
SIDECAR_FORMAT = "minicnn-export"
MAX_SIDECAR_BYTES = 10_000_000


def model_metadata(model):
    """``{"architecture": str, "labels": [str] or None, "preprocessing": dict or None}``."""
    pre = getattr(model, "preprocess", None)
    labels = getattr(model, "labels", None)
    return {"architecture": getattr(model, "arch", type(model).__name__),
            "labels": [str(x) for x in labels] if labels else None,
            "preprocessing": pre.to_dict() if pre is not None else None}


def metadata_strings(model_or_meta):
    """The metadata as ``{str: str}`` (ONNX and safetensors store strings): the architecture
    as it is, labels and preprocessing as JSON; entries that are None are left out."""
    meta = model_or_meta if isinstance(model_or_meta, dict) else model_metadata(model_or_meta)
    out = {}
    for key in KEYS:
        value = meta.get(key)
        if value is not None:
            out[key] = value if key == "architecture" else json.dumps(value)
    return out


def sidecar_path(path):
    """``out/net.pth`` -> ``out/net.pth.json``."""
    return os.fspath(path) + ".json"


def write_sidecar(path, model_or_meta):
    """Write the metadata JSON beside the file at ``path`` (with its name and sha256)."""
    meta = model_or_meta if isinstance(model_or_meta, dict) else model_metadata(model_or_meta)
    doc = {"format": SIDECAR_FORMAT, "file": os.path.basename(os.fspath(path)),
           "sha256": sha256_file(path), **{k: meta.get(k) for k in KEYS}}
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    atomic_write(sidecar_path(path), lambda f: f.write(text.encode("utf-8")))
    return sidecar_path(path)


def _decode(path, strings):
    """``{str: str}`` as stored -> plain data, each JSON entry checked."""
    meta = {key: None for key in KEYS}
    meta["architecture"] = strings.get("architecture")
    for key in ("labels", "preprocessing"):
        if key in strings:
            try:
                meta[key] = json.loads(strings[key])
            except (json.JSONDecodeError, RecursionError) as err:
                raise ValueError(f"{path}: metadata {key!r} is not valid JSON: {err}") from None
    _check(path, meta)
    return meta


def _check(path, meta):
    labels, pre, arch = meta.get("labels"), meta.get("preprocessing"), meta.get("architecture")
    if arch is not None and not isinstance(arch, str):
        raise ValueError(f"{path}: metadata 'architecture' must be a string, got "
                         f"{type(arch).__name__}")
    if labels is not None and not (isinstance(labels, list)
                                   and all(isinstance(x, str) for x in labels)):
        raise ValueError(f"{path}: metadata 'labels' must be a list of class names")
    if pre is not None and not isinstance(pre, dict):
        raise ValueError(f"{path}: metadata 'preprocessing' must be a JSON object, got "
                         f"{type(pre).__name__}")


def _read_sidecar(path):
    side = sidecar_path(path)
    if not os.path.exists(side):
        raise FileNotFoundError(f"{path}: its metadata {side} is missing (a .pth holds only the "
                                f"weights; `minicnn export` writes the .json beside it)")
    if os.path.getsize(side) > MAX_SIDECAR_BYTES:
        raise ValueError(f"{side}: {os.path.getsize(side)} bytes is over the "
                         f"{MAX_SIDECAR_BYTES}-byte limit of a metadata file")
    with open(side, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
            raise ValueError(f"{side}: not valid JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{side}: not minicnn export metadata (format should be "
                         f"{SIDECAR_FORMAT!r})")
    if doc.get("sha256") != sha256_file(path):
        raise ValueError(f"{side} describes another file: its sha256 {doc.get('sha256')} is not "
                         f"{path}'s (the .pth was replaced after the export)")
    meta = {key: doc.get(key) for key in KEYS}
    _check(side, meta)
    return meta


def read_metadata(path):
    """Architecture, labels and preprocessing of an exported file, by its extension.

    Returns ``{"architecture": str or None, "labels": [str] or None,
    "preprocessing": dict or None}`` (``data.Preprocess.from_dict`` takes the last).
    .onnx needs the onnx package; .pth reads the ``.pth.json`` beside it and checks that
    it belongs to that file (sha256).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_metadata: {path} is not a file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        try:
            import onnx
        except ImportError:
            raise ImportError("reading an .onnx file's metadata needs the onnx package: "
                              "pip install onnx") from None
        proto = onnx.load(path, load_external_data=False)
        return _decode(path, {p.key: p.value for p in proto.metadata_props})
    if ext == ".safetensors":
        from .safetensors import read_safetensors_header
        return _decode(path, read_safetensors_header(path)[1])
    if ext in (".pth", ".pt"):
        return _read_sidecar(path)
    raise ValueError(f"read_metadata: cannot tell the format of {path} from its extension "
                     f"{ext!r}; expected .onnx, .safetensors or .pth")
