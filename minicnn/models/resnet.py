"""ResNet-18 (He et al. 2015) and BatchNorm folding.

A residual block learns a correction F(x) to its input instead of a whole new
mapping: out = ReLU(F(x) + x). The BasicBlock's F is conv 3×3 · BN · ReLU ·
conv 3×3 · BN; when the block halves the resolution or changes the width, the
shortcut x goes through ``downsample`` (conv 1×1 with stride · BN) so the shapes match::

    x ─ conv1 ─ bn1 ─ relu ─ conv2 ─ bn2 ─(+)─ relu ─> out
    └──────────── (downsample) ───────────┘

Same module tree and state_dict keys as ``torchvision.models.resnet18``
(``conv1``, ``bn1``, ``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``,
``fc.weight``, ...), so ``resnet18-f37072fd.pth`` loads unchanged::

    conv1 7×7/2 (64) · bn1 · relu · maxpool 3/2 · layer1 (64) · layer2 (128, /2) ·
    layer3 (256, /2) · layer4 (512, /2) · avgpool (global) · fc 512→1000

Like torchvision, a BasicBlock owns ONE ``relu`` module and calls it twice (after
bn1 and after the addition). ReLU has no weights, so this changes no key; for
``capture`` it means ``layer1.0.relu`` holds its *last* output — the block's output,
the same Tensor as ``layer1.0``. To read the inner activation, capture ``layer1.0.bn1``
(its input). Grad-CAM layer (``default_cam_layer``): ``layer4``, the last residual
stage (512×7×7 at 224 input), just before the global average pool.
Input: any size (224×224 for the pretrained weights).
"""
import copy

import numpy as np

from .. import nn, ops
from ..data import IMAGENET_TORCHVISION
from ..backend import as_backend, backend_name, to_numpy
from .pretrained import finish_model

__all__ = ["BasicBlock", "ResNet", "resnet18", "fold_batchnorm"]


def conv3x3(in_planes, out_planes, stride=1, rng=None):
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False, rng=rng)


class BasicBlock(nn.Module):
    """Two 3×3 convs with BatchNorm and a shortcut; out = relu(bn2(conv2(relu(bn1(conv1(x))))) + x)."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, rng=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, rng=rng)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()                      # used twice, as in torchvision
        self.conv2 = conv3x3(planes, planes, rng=rng)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample               # None or Sequential(conv 1×1, BN)
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(ops.add(out, identity))


class ResNet(nn.Module):
    """ResNet with BasicBlocks; ``layers`` = blocks per stage ((2, 2, 2, 2) is ResNet-18)."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes=1000, rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False, rng=rng)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1, rng)
        self.layer2 = self._make_layer(128, layers[1], 2, rng)
        self.layer3 = self._make_layer(256, layers[2], 2, rng)
        self.layer4 = self._make_layer(512, layers[3], 2, rng)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * BasicBlock.expansion, num_classes, rng=rng)
        self.num_classes = num_classes
        self.preprocess = IMAGENET_TORCHVISION
        self.labels = None
        self.default_cam_layer = "layer4"

    def _make_layer(self, planes, blocks, stride, rng):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False, rng=rng),
                nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample, rng=rng)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes, rng=rng) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        """x: (N, 3, H, W) normalized RGB -> class scores (N, num_classes)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(ops.flatten(self.avgpool(x), 1))


def resnet18(num_classes=1000, pretrained=False, rng=None):
    """ResNet-18; ``pretrained=True`` loads torchvision's ImageNet weights."""
    return finish_model(ResNet((2, 2, 2, 2), num_classes, rng=rng), "resnet18", pretrained)


# ----------------------------------------------------------- BatchNorm folding

def fold_batchnorm(model):
    """A copy of ``model`` in eval mode whose convs absorb the BatchNorm that follows them.

    In eval mode BN is a fixed per-channel affine map, y = γ (z − μ) / √(σ² + ε) + β,
    applied to a conv's output z = W ∗ x + b. Folding it into the conv gives one conv:

        s = γ / √(σ² + ε)            (per output channel)
        W' = s · W                   (each output channel's filter scaled)
        b' = s · (b − μ) + β         (b = 0 for a conv without bias)

    and the BN is replaced by ``nn.Identity`` (so its layer name stays, as a no-op).
    Which BN belongs to which conv: a BatchNorm2d attribute defined *right after* a
    Conv2d attribute in the same module (``conv1, bn1``; ``downsample.0, downsample.1``;
    ``_depthwise_conv, _bn1``), the convention of every model here. The fold is computed
    in float64 and stored in the conv's dtype; outputs agree with the unfolded model in
    eval mode to float32 rounding. The original model is not changed.
    Returns the folded copy; ``folded.folded_pairs`` lists the (conv, bn) names folded.
    """
    folded = copy.deepcopy(model).eval()
    pairs = []
    for prefix, module in folded.named_modules():
        children = module.named_children()
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            if conv.out_channels != bn.num_features:
                raise ValueError(f"fold_batchnorm: {prefix + '.' if prefix else ''}{bn_name} "
                                 f"normalizes {bn.num_features} channels but the conv before it, "
                                 f"{conv_name}, makes {conv.out_channels}")
            _fold_pair(conv, bn)
            setattr(module, bn_name, nn.Identity())
            full = (prefix + ".") if prefix else ""
            pairs.append((full + conv_name, full + bn_name))
    folded.folded_pairs = pairs
    return folded


def _fold_pair(conv, bn):
    """Rewrite ``conv``'s weight and bias so that conv' (x) = bn(conv(x)) in eval mode."""
    w = conv.weight.data
    backend, dtype = backend_name(w), w.dtype
    scale = (to_numpy(bn.weight.data).astype(np.float64)
             / np.sqrt(to_numpy(bn.running_var).astype(np.float64) + bn.eps))
    bias = (np.zeros(conv.out_channels) if conv.bias is None
            else to_numpy(conv.bias.data).astype(np.float64))
    new_w = to_numpy(w).astype(np.float64) * scale[:, None, None, None]
    new_b = (bias - to_numpy(bn.running_mean).astype(np.float64)) * scale \
        + to_numpy(bn.bias.data).astype(np.float64)
    conv.weight = nn.Parameter(as_backend(new_w.astype(dtype), backend))
    conv.bias = nn.Parameter(as_backend(new_b.astype(dtype), backend))
