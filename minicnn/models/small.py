"""The two small nets minicnn trains itself and ships: the offline defaults.

Both are plain VGG-style stacks of conv 3×3 / ReLU / 2×2 max-pool with a
fully connected head — only layers whose deconvnet inverse is explicit
(max_unpool2d with the pooling switches, rectification, conv_transpose2d),
so every visualization technique, including Zeiler & Fergus' deconvnet,
runs on them.

    fashion_net: 1×28×28 Fashion-MNIST  -> 10 classes
    cifar_net:   3×32×32 CIFAR-10       -> 10 classes

Layer names follow torchvision's VGG: ``features.N`` and ``classifier.N``.
"""
from .. import nn
from ..data.images import Preprocess
from .pretrained import load_shipped

__all__ = ["SmallVGG", "fashion_net", "cifar_net", "FASHION_PREPROCESS", "CIFAR_PREPROCESS"]

# Pixel statistics of the training sets (0–255 images scaled to [0, 1] first).
FASHION_PREPROCESS = Preprocess(mean=(0.2860,), std=(0.3530,), scale=1 / 255, input_size=(28, 28))
CIFAR_PREPROCESS = Preprocess(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                              scale=1 / 255, input_size=(32, 32))


class SmallVGG(nn.Module):
    """features (conv/ReLU/max-pool blocks) -> flatten -> classifier (Linear/ReLU/Dropout)."""

    def __init__(self, in_channels, widths, spatial, hidden, num_classes, dropout, seed):
        super().__init__()
        self.num_classes = num_classes
        layers, c = [], in_channels
        for block in widths:                       # e.g. ((32, 32), (64, 64))
            for w in block:
                layers += [nn.Conv2d(c, w, 3, padding=1, rng=seed + len(layers)), nn.ReLU()]
                c = w
            layers.append(nn.MaxPool2d(2, 2))
            spatial //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c * spatial * spatial, hidden, rng=seed + 100), nn.ReLU(),
            nn.Dropout(dropout, rng=seed + 101),
            nn.Linear(hidden, num_classes, rng=seed + 102))
        self.default_cam_layer = f"features.{len(layers) - 2}"   # last conv block's ReLU output

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def _build(name, pretrained, **kwargs):
    model = SmallVGG(**kwargs)
    model.arch = name
    if pretrained:
        load_shipped(model, name)
    return model


def fashion_net(pretrained=False, seed=0):
    """Conv(1→16)-ReLU-Conv(16→16)-ReLU-Pool, Conv(16→32)-ReLU-Conv(32→32)-ReLU-Pool, FC 1568→128→10."""
    model = _build("fashion_net", pretrained, in_channels=1, widths=((16, 16), (32, 32)),
                   spatial=28, hidden=128, num_classes=10, dropout=0.3, seed=seed)
    model.preprocess = FASHION_PREPROCESS
    return model


def cifar_net(pretrained=False, seed=0):
    """Three blocks of two 3×3 convs (32, 64, 128 channels) each followed by a 2×2 max-pool,
    then FC 2048→256→10 with dropout."""
    model = _build("cifar_net", pretrained, in_channels=3, widths=((32, 32), (64, 64), (128, 128)),
                   spatial=32, hidden=256, num_classes=10, dropout=0.5, seed=seed)
    model.preprocess = CIFAR_PREPROCESS
    return model
