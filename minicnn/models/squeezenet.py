"""SqueezeNet 1.1 (Iandola et al. 2016): AlexNet accuracy from 1.2 M parameters.

The building block is the Fire module: a 1×1 "squeeze" conv shrinks the
channels, then 1×1 and 3×3 "expand" convs run side by side on the result and
their outputs are concatenated along the channels::

    x ─ squeeze 1×1 ─ ReLU ─┬─ expand1x1 1×1 ─ ReLU ─┐
                            └─ expand3x3 3×3 ─ ReLU ─┴─ concat -> (e1 + e3) channels

Same module tree and state_dict keys as ``torchvision.models.squeezenet1_1``
(``features.3.squeeze.weight``, ..., ``classifier.1.weight``), so its checkpoint
``squeezenet1_1-b8a52dc0.pth`` loads unchanged::

    features    conv 3×3/2 (64) · ReLU · max 3/2 · Fire · Fire · max 3/2 · Fire · Fire ·
                max 3/2 · Fire · Fire · Fire · Fire            (max-pools with ceil_mode=True)
    classifier  Dropout · conv 1×1 (512→classes) · ReLU · global average pool

There is no fully connected layer: the last conv makes one map per class and
the global average turns each map into a score (then flattened to (N, classes)).
Input: at least 17×17 (224×224 for the pretrained weights).
Grad-CAM layer (``default_cam_layer``): ``features.12``, the last Fire module's
output (512×13×13 at 224 input), just before the classifier.
"""
import numpy as np

from .. import nn, ops
from ..data import IMAGENET_TORCHVISION
from .pretrained import finish_model

__all__ = ["Fire", "SqueezeNet", "squeezenet1_1"]


class Fire(nn.Module):
    """Squeeze to ``squeeze_planes`` channels, expand to expand1x1 + expand3x3 channels."""

    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes, rng=None):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, 1, rng=rng)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, 1, rng=rng)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, 3, padding=1, rng=rng)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        s = self.squeeze_activation(self.squeeze(x))
        return ops.concat([self.expand1x1_activation(self.expand1x1(s)),
                           self.expand3x3_activation(self.expand3x3(s))], axis=1)


class SqueezeNet(nn.Module):
    """SqueezeNet version 1.1 (the cheaper one: 3×3 first conv, earlier pooling)."""

    def __init__(self, num_classes=1000, dropout=0.5, rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, rng=rng), nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64, rng=rng), Fire(128, 16, 64, 64, rng=rng),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128, rng=rng), Fire(256, 32, 128, 128, rng=rng),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192, rng=rng), Fire(384, 48, 192, 192, rng=rng),
            Fire(384, 64, 256, 256, rng=rng), Fire(512, 64, 256, 256, rng=rng))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout, rng=rng), nn.Conv2d(512, num_classes, 1, rng=rng), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)))
        self.num_classes = num_classes
        self.preprocess = IMAGENET_TORCHVISION
        self.labels = None
        self.default_cam_layer = "features.12"

    def forward(self, x):
        """x: (N, 3, H, W) normalized RGB -> class scores (N, num_classes)."""
        return ops.flatten(self.classifier(self.features(x)), 1)


def squeezenet1_1(num_classes=1000, pretrained=False, rng=None):
    """SqueezeNet 1.1; ``pretrained=True`` loads torchvision's ImageNet weights."""
    return finish_model(SqueezeNet(num_classes, rng=rng), "squeezenet1_1", pretrained)
