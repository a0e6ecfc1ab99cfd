"""VGG (Simonyan & Zisserman 2014): stacks of 3×3 convs and 2×2 max-pools.

Same module tree and state_dict keys as ``torchvision.models.vgg11`` / ``vgg16``
(the variants without batch norm), so their ImageNet checkpoints load unchanged::

    features    [conv 3×3 (pad 1) · ReLU] × n, max 2/2 — five times (the CONFIGS below)
    avgpool     adaptive average pool to 7×7 (a no-op at 224×224 input)
    classifier  Linear 25088→4096 · ReLU · Dropout · Linear 4096→4096 · ReLU · Dropout · Linear →1000

A config lists conv widths, ``"M"`` for a max-pool; the Sequential numbers its
layers in order, so VGG16's last conv is ``features.28``, its ReLU ``features.29``
and the last pool ``features.30``; the classifier's Linear layers are
``classifier.0``, ``classifier.3``, ``classifier.6``.
Input: at least 32×32 (224×224 for the pretrained weights).
Grad-CAM layer (``default_cam_layer``): the ReLU after the last conv
(VGG16: ``features.29``, 512×14×14 at 224 input; VGG11: ``features.19``).
"""
import numpy as np

from .. import nn, ops
from ..data import IMAGENET_TORCHVISION
from .pretrained import finish_model

__all__ = ["VGG", "CONFIGS", "vgg11", "vgg16"]

CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}


def make_features(config, rng):
    """The conv part of a VGG from its config: widths -> conv + ReLU, "M" -> max-pool 2×2."""
    layers, channels = [], 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1, rng=rng), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, config, num_classes=1000, dropout=0.5, rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.features = make_features(config, rng)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096, rng=rng), nn.ReLU(), nn.Dropout(dropout, rng=rng),
            nn.Linear(4096, 4096, rng=rng), nn.ReLU(), nn.Dropout(dropout, rng=rng),
            nn.Linear(4096, num_classes, rng=rng))
        self.num_classes = num_classes
        self.preprocess = IMAGENET_TORCHVISION
        self.labels = None
        self.default_cam_layer = f"features.{len(self.features) - 2}"   # last conv's ReLU

    def forward(self, x):
        """x: (N, 3, H, W) normalized RGB -> class scores (N, num_classes)."""
        x = self.avgpool(self.features(x))
        return self.classifier(ops.flatten(x, 1))


def vgg11(num_classes=1000, pretrained=False, rng=None):
    """VGG-11 (config "A", 8 convs); ``pretrained=True`` loads torchvision's ImageNet weights."""
    return finish_model(VGG(CONFIGS["vgg11"], num_classes, rng=rng), "vgg11", pretrained)


def vgg16(num_classes=1000, pretrained=False, rng=None):
    """VGG-16 (config "D", 13 convs); ``pretrained=True`` loads torchvision's ImageNet weights."""
    return finish_model(VGG(CONFIGS["vgg16"], num_classes, rng=rng), "vgg16", pretrained)
