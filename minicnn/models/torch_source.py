"""PyTorch source of every shipped architecture, as text: what a user who leaves minicnn runs.

    print(torch_module_source("cifar_net"))       # minicnn export --torch-module cifar_net

The text is a complete Python file (it imports torch; minicnn itself never does) whose
``build()`` returns a ``torch.nn.Module`` with minicnn's module names, so the ``.pth`` that
``minicnn export`` writes loads into it with ``strict=True``. The classes are written the way
PyTorch code usually is, one per architecture family, with the same layer order and settings
as the minicnn class of that family (TensorFlow's SAME padding for EfficientNet-Lite0,
SegNet's unpooling with the encoder's indices, U-Net's concatenated skips).

The PyTorch text itself lives in ``torch_templates/`` (read it there as the PyTorch code it
is): ``header.txt`` (the file's docstring and imports, filled in with the architecture's
name), one file per family (``small_vgg.txt``, ``alexnet.txt``, ``vgg.txt``,
``squeezenet.txt``, ``resnet18.txt``, ``efficientnet.txt``, ``segmentation.txt``) and
``build.txt`` (the ``build()`` that returns the constructor call below).
"""
from functools import lru_cache
from pathlib import Path

from .registry import ARCHITECTURES
from .vgg import CONFIGS

__all__ = ["torch_module_source", "TORCH_SOURCES"]

TEMPLATES = Path(__file__).with_name("torch_templates")


@lru_cache(maxsize=None)
def _template(name):
    """The text of ``torch_templates/<name>.txt``."""
    return (TEMPLATES / f"{name}.txt").read_text(encoding="utf-8")


def _segmentation(decoder, skips):
    from .segmentation import SEG_WIDTHS
    return _template("segmentation"), (f"EncoderDecoder({decoder!r}, skips={skips}, "
                                       f"num_classes=11, in_channels=1, widths={SEG_WIDTHS!r})")


def _efficientnet():
    from .efficientnet import LITE0_STAGES
    return (_template("efficientnet").replace("{stages!r}", repr(LITE0_STAGES)),
            "EfficientNetLite0()")


TORCH_SOURCES = {
    "fashion_net": lambda: (_template("small_vgg"), "SmallVGG(in_channels=1, widths=((16, 16), "
                            "(32, 32)), spatial=28, hidden=128, num_classes=10, dropout=0.3)"),
    "cifar_net": lambda: (_template("small_vgg"), "SmallVGG(in_channels=3, widths=((32, 32), "
                          "(64, 64), (128, 128)), spatial=32, hidden=256, num_classes=10, "
                          "dropout=0.5)"),
    "alexnet": lambda: (_template("alexnet"), "AlexNet()"),
    "vgg11": lambda: (_template("vgg"), f"VGG({CONFIGS['vgg11']!r})"),
    "vgg16": lambda: (_template("vgg"), f"VGG({CONFIGS['vgg16']!r})"),
    "squeezenet1_1": lambda: (_template("squeezenet"), "SqueezeNet()"),
    "resnet18": lambda: (_template("resnet18"), "ResNet18()"),
    "efficientnet_lite0": _efficientnet,
    "segnet": lambda: _segmentation("unpool", False),
    "segnet_transposed": lambda: _segmentation("transpose", False),
    "unet": lambda: _segmentation("transpose", True),
}
"""name -> () -> (class source, the constructor call that ``build()`` returns)."""


def torch_module_source(name):
    """The PyTorch file for architecture ``name`` (every name of ``registry.ARCHITECTURES``)."""
    if name not in TORCH_SOURCES:
        raise KeyError(f"no PyTorch source for {name!r}; architectures: "
                       f"{', '.join(sorted(ARCHITECTURES))}")
    body, call = TORCH_SOURCES[name]()
    header = _template("header").format(name=name, module=f"{name}_torch")
    return header + body + _template("build").format(name=name, call=call)
