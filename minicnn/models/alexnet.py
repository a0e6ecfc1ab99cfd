"""AlexNet (Krizhevsky, Sutskever & Hinton 2012), torchvision's single-tower version.

Same module tree and state_dict keys as ``torchvision.models.alexnet``, so its
ImageNet checkpoint (``alexnet-owt-7be5be79.pth``) loads unchanged::

    features    conv 11×11/4 (64) · ReLU · max 3/2 · conv 5×5 (192) · ReLU · max 3/2 ·
                conv 3×3 (384) · ReLU · conv 3×3 (256) · ReLU · conv 3×3 (256) · ReLU · max 3/2
    avgpool     adaptive average pool to 6×6 (a no-op at 224×224 input)
    classifier  Dropout · Linear 9216→4096 · ReLU · Dropout · Linear 4096→4096 · ReLU · Linear →1000

Keys: ``features.{0,3,6,8,10}.weight/bias``, ``classifier.{1,4,6}.weight/bias``.
Input: at least 63×63 pixels (224×224 for the pretrained weights).
Grad-CAM layer (``default_cam_layer``): ``features.11``, the ReLU after the last
conv (256×13×13 at 224 input), just before the last max-pool.
"""
import numpy as np

from .. import nn, ops
from ..data import IMAGENET_TORCHVISION
from .pretrained import finish_model

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.5, rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2, rng=rng), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2, rng=rng), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1, rng=rng), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, rng=rng), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1, rng=rng), nn.ReLU(),
            nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout, rng=rng), nn.Linear(256 * 6 * 6, 4096, rng=rng), nn.ReLU(),
            nn.Dropout(dropout, rng=rng), nn.Linear(4096, 4096, rng=rng), nn.ReLU(),
            nn.Linear(4096, num_classes, rng=rng))
        self.num_classes = num_classes
        self.preprocess = IMAGENET_TORCHVISION
        self.labels = None
        self.default_cam_layer = "features.11"

    def forward(self, x):
        """x: (N, 3, H, W) normalized RGB -> class scores (N, num_classes)."""
        x = self.avgpool(self.features(x))
        return self.classifier(ops.flatten(x, 1))


def alexnet(num_classes=1000, pretrained=False, rng=None):
    """AlexNet; ``pretrained=True`` loads torchvision's ImageNet weights (see models.pretrained)."""
    return finish_model(AlexNet(num_classes, rng=rng), "alexnet", pretrained)
