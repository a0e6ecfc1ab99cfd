"""Model names: ``MODELS["squeezenet1_1"](pretrained=True)`` is
``mc.models.squeezenet1_1(pretrained=True)``; ``import_weights`` turns a checkpoint of a named
architecture into minicnn's ``<arch>.npz``. Where weights are found and how they are
loaded: ``pretrained.py`` (its names are also reachable from here).
"""
from pathlib import Path

from .. import io
from ..data import imagenet_classes
from .alexnet import alexnet
from .efficientnet import efficientnet_lite0
from .pretrained import (INSTALLED_WEIGHTS, REPO_WEIGHTS, SHIPPED, WEIGHTS,  # noqa: F401
                         WeightsInfo, active_weights, describe, fetch, fetch_weights,
                         find_shipped, find_weights, finish_model, load_pretrained, load_shipped,
                         read_weights, shipped_names, shipped_weight_dirs, weight_locations)
from .resnet import resnet18
from .segmentation import segnet, segnet_transposed, unet
from .small import cifar_net, fashion_net
from .squeezenet import squeezenet1_1
from .vgg import vgg11, vgg16

__all__ = ["MODELS", "SEGMENTATION_MODELS", "ARCHITECTURES", "WEIGHTS", "WeightsInfo",
           "get_model", "weight_locations", "find_weights",
           "fetch_weights", "fetch", "describe", "import_weights", "load_pretrained",
           "finish_model", "load_shipped", "REPO_WEIGHTS", "INSTALLED_WEIGHTS",
           "shipped_weight_dirs", "find_shipped", "SHIPPED", "import_report", "active_weights",
           "shipped_names"]

MODELS = {
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "squeezenet1_1": squeezenet1_1,
    "resnet18": resnet18,
    "efficientnet_lite0": efficientnet_lite0,
    "fashion_net": fashion_net,
    "cifar_net": cifar_net,
}
# encoder-decoders labelling every pixel (not classifiers: the gallery's --model takes MODELS)
SEGMENTATION_MODELS = {"segnet": segnet, "segnet_transposed": segnet_transposed, "unet": unet}
ARCHITECTURES = {**MODELS, **SEGMENTATION_MODELS}     # every name a weights file may carry


def get_model(name, **kwargs):
    """``ARCHITECTURES[name](**kwargs)``; an unknown name lists the known ones."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown model {name!r}; known models: "
                       f"{', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name](**kwargs)


def import_weights(path, arch, out=None):
    """Convert a checkpoint (.pth / .safetensors / .npz) of architecture ``arch`` into
    minicnn's ``<arch>.npz`` + ``.json`` manifest in ``out`` (default: the cache's
    ``weights/``, where ``pretrained=True`` finds it). The weights are loaded into the
    model first, so a file that does not fit ``arch`` is refused. Returns the new path."""
    model = load_pretrained(finish_model(get_model(arch), arch, pretrained=False), path)
    folder = Path(out) if out else Path(io.cache_dir()) / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    labels = getattr(model, "labels", None) or (imagenet_classes() if getattr(model, "num_classes", 0) == 1000
                              and arch in WEIGHTS else None)
    meta = {"architecture": arch, "labels": labels,
            "preprocessing": (model.preprocess.to_dict()
                              if getattr(model, "preprocess", None) else None),
            "provenance": {"imported_from": Path(path).name, "source_sha256": io.sha256_file(path)}}
    target = folder / f"{arch}.npz"
    io.save_npz(target, model.state_dict(), meta)
    return target


def import_report(target, arch):
    """One or two lines for `minicnn weights import`: where the file went, whether
    ``pretrained=True`` will load it, and if not, which file wins instead."""
    active, _ = active_weights(arch)
    line = f"wrote {target}"
    if active is not None and Path(active).resolve() == Path(target).resolve():
        return line + f"\n{arch}(pretrained=True) will load it (it is first in the search order)"
    return line + (f"\n{arch}(pretrained=True) will NOT load it: {active} comes first in the "
                   f"search order (`minicnn weights list`); load it with "
                   f"load_pretrained(model, '{target}')")
