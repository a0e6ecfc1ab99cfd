"""PyTorch twins of minicnn's architectures, for parity tests and benchmarks only.

``torch_model("squeezenet1_1")`` builds the architecture in torch.nn with the same
module names (so the same state_dict keys) and random weights. torch is loaded
when a function here is called — minicnn itself never needs it.
"""
import importlib
import math

__all__ = ["torch_model", "torch_small_vgg"]


def torch_model(name, device="cpu"):
    """The architecture ``name`` in torch.nn, module names as torchvision / the package use.
    ``device="meta"`` builds shapes only (no memory, no time)."""
    torch = importlib.import_module("torch")
    tnn = torch.nn
    F = torch.nn.functional

    class AlexNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(),
                tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(),
                tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2))
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
            self.classifier = tnn.Sequential(
                tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(), tnn.Dropout(),
                tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Linear(4096, 1000))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    class VGG(tnn.Module):
        def __init__(self, widths):
            super().__init__()
            layers, c = [], 3
            for v in widths:
                if v == "M":
                    layers.append(tnn.MaxPool2d(2, 2))
                else:
                    layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.ReLU()]
                    c = v
            self.features = tnn.Sequential(*layers)
            self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
            self.classifier = tnn.Sequential(
                tnn.Linear(25088, 4096), tnn.ReLU(), tnn.Dropout(),
                tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 1000))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    class Fire(tnn.Module):
        def __init__(self, cin, s, e1, e3):
            super().__init__()
            self.squeeze, self.squeeze_activation = tnn.Conv2d(cin, s, 1), tnn.ReLU()
            self.expand1x1, self.expand1x1_activation = tnn.Conv2d(s, e1, 1), tnn.ReLU()
            self.expand3x3 = tnn.Conv2d(s, e3, 3, padding=1)
            self.expand3x3_activation = tnn.ReLU()

        def forward(self, x):
            x = self.squeeze_activation(self.squeeze(x))
            return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                              self.expand3x3_activation(self.expand3x3(x))], 1)

    class SqueezeNet(tnn.Module):
        def __init__(self):
            super().__init__()
            pool = lambda: tnn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, 3, 2), tnn.ReLU(), pool(),
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
            self.classifier = tnn.Sequential(tnn.Dropout(), tnn.Conv2d(512, 1000, 1), tnn.ReLU(),
                                             tnn.AdaptiveAvgPool2d((1, 1)))

        def forward(self, x):
            return torch.flatten(self.classifier(self.features(x)), 1)

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(cout))

        def forward(self, x):
            skip = x if self.downsample is None else self.downsample(x)
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + skip)

    class ResNet18(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1, self.relu = tnn.BatchNorm2d(64), tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
            for i, (cin, cout, stride) in enumerate(widths, 1):
                setattr(self, f"layer{i}", tnn.Sequential(Block(cin, cout, stride),
                                                          Block(cout, cout, 1)))
            self.avgpool, self.fc = tnn.AdaptiveAvgPool2d((1, 1)), tnn.Linear(512, 1000)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    def tf_same(x, k, s):
        """TensorFlow SAME padding: output ceil(n / s); the odd pixel of padding goes last."""
        ph = max((math.ceil(x.shape[2] / s) - 1) * s + k - x.shape[2], 0)
        pw = max((math.ceil(x.shape[3] / s) - 1) * s + k - x.shape[3], 0)
        return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])

    def bn(c):
        return tnn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class MBConv(tnn.Module):
        def __init__(self, cin, cout, k, s, e):
            super().__init__()
            mid, self.k, self.s, self.e = cin * e, k, s, e
            if e != 1:
                self._expand_conv, self._bn0 = tnn.Conv2d(cin, mid, 1, bias=False), bn(mid)
            self._depthwise_conv = tnn.Conv2d(mid, mid, k, s, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv, self._bn2 = tnn.Conv2d(mid, cout, 1, bias=False), bn(cout)
            self.skip = s == 1 and cin == cout

        def forward(self, x):
            h = F.relu6(self._bn0(self._expand_conv(x))) if self.e != 1 else x
            h = F.relu6(self._bn1(self._depthwise_conv(tf_same(h, self.k, self.s))))
            h = self._bn2(self._project_conv(h))
            return h + x if self.skip else h

    class EfficientNetLite0(tnn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem, self._bn0 = tnn.Conv2d(3, 32, 3, 2, bias=False), bn(32)
            blocks = []
            for n, k, s, e, cin, cout in [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24),
                                          (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                                          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
                                          (1, 3, 1, 6, 192, 320)]:
                blocks += [MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e)
                           for i in range(n)]
            self._blocks = tnn.Sequential(*blocks)
            self._conv_head, self._bn1 = tnn.Conv2d(320, 1280, 1, bias=False), bn(1280)
            self._fc = tnn.Linear(1280, 1000)

        def forward(self, x):
            x = F.relu6(self._bn0(self._conv_stem(tf_same(x, 3, 2))))
            x = F.relu6(self._bn1(self._conv_head(self._blocks(x))))
            return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    from minicnn.models.vgg import CONFIGS
    builders = {"alexnet": AlexNet, "vgg11": lambda: VGG(CONFIGS["vgg11"]),
                "vgg16": lambda: VGG(CONFIGS["vgg16"]), "squeezenet1_1": SqueezeNet,
                "resnet18": ResNet18, "efficientnet_lite0": EfficientNetLite0}
    torch.manual_seed(0)
    with torch.device(device):
        model = builders[name]()
    with torch.no_grad():                    # BatchNorm that is not the identity
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def torch_small_vgg(model):
    """A torch.nn twin of a minicnn ``SmallVGG`` (fashion_net / cifar_net), weights copied."""
    torch = importlib.import_module("torch")
    tnn = torch.nn
    from ..backend import to_numpy

    def twin(layer):
        kind = type(layer).__name__
        if kind == "Conv2d":
            return tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                              layer.stride, layer.padding)
        if kind == "Linear":
            return tnn.Linear(layer.in_features, layer.out_features)
        if kind == "MaxPool2d":
            return tnn.MaxPool2d(layer.kernel_size, layer.stride)
        if kind == "Dropout":
            return tnn.Dropout(layer.p)
        return tnn.ReLU()

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*[twin(m) for m in model.features])
            self.classifier = tnn.Sequential(*[twin(m) for m in model.classifier])

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    net = Twin()
    net.load_state_dict({k: torch.tensor(to_numpy(v)) for k, v in model.state_dict().items()})
    return net
