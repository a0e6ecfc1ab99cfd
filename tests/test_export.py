"""Leaving minicnn with a model: .pth (PyTorch), safetensors and ONNX files.

Each exported file must give the logits minicnn gives, on a batch, in the other engine
(PyTorch for .pth, onnxruntime for ONNX); weight files must round-trip bit for bit.
The ImageNet architectures use random weights (BatchNorm statistics made non-trivial)
at small input sizes their adaptive pools allow.
"""
import numpy as np
import pytest

import minicnn as mc
from minicnn.autograd import no_grad
from minicnn.cli import main
from minicnn.models.registry import load_pretrained

RTOL = 1e-5
SMALL = {"fashion_net": (1, 28), "cifar_net": (3, 32)}
SEGMENTATION = {"segnet": (1, 32), "segnet_transposed": (1, 32), "unet": (1, 32)}   # per pixel
IMAGENET_SIZE = {"squeezenet1_1": 66, "resnet18": 64, "efficientnet_lite0": 64,
                 "alexnet": 63, "vgg11": 32, "vgg16": 32}      # 66: SqueezeNet's ceil_mode pools round up
FAST = ["fashion_net", "cifar_net", "squeezenet1_1", "resnet18", "efficientnet_lite0"]
SLOW = ["alexnet", "vgg11", "vgg16"]               # 60-140 M weights: seconds each


def make_model(name):
    """The shipped weights for the small nets; random ones (non-trivial BN) elsewhere."""
    if name in SMALL or name in SEGMENTATION:
        return mc.models.get_model(name, pretrained=True)
    model = mc.models.get_model(name, rng=0)
    rng = np.random.default_rng(1)
    for m in model.modules():
        if isinstance(m, mc.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
            m.bias.data = rng.normal(0, 0.1, c).astype(np.float32)
            m.running_mean = rng.normal(0, 0.1, c).astype(np.float32)
            m.running_var = rng.uniform(0.5, 1.5, c).astype(np.float32)
    return model.eval()


def batch(name, n=3):
    channels, size = {**SMALL, **SEGMENTATION}.get(name, (3, IMAGENET_SIZE.get(name)))
    return np.random.default_rng(2).standard_normal((n, channels, size, size)).astype(np.float32)


def logits(model, x):
    with no_grad():
        return model(mc.tensor(x)).numpy()


def relative_error(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def assert_same_state(a, b):
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), f"{key} changed on the way"


# ------------------------------------------------------------------ PyTorch

def torch_twin(name):
    """A torch.nn module with minicnn's module tree, for loading the .pth with strict=True."""
    from minicnn.bench.reference_torch import torch_model, torch_small_vgg
    if name in SMALL:               # a twin of a differently seeded net: the .pth must overwrite it
        return torch_small_vgg(getattr(mc.models, name)(seed=7)).eval()
    return torch_model(name)


def check_torch(name, tmp_path):
    torch = pytest.importorskip("torch")
    model, x = make_model(name), batch(name)
    path = tmp_path / f"{name}.pth"
    mc.io.save_torch(path, model.state_dict())
    state = torch.load(path, weights_only=True)
    twin = torch_twin(name)
    twin.load_state_dict(state, strict=True)
    with torch.no_grad():
        got = twin(torch.from_numpy(x)).numpy()
    error = relative_error(got, logits(model, x))
    assert error < RTOL, f"{name}: PyTorch logits differ by {error:.2e} (relative)"


@pytest.mark.torch
@pytest.mark.parametrize("name", FAST)
def test_pth_gives_the_same_logits_in_pytorch(name, tmp_path):
    check_torch(name, tmp_path)


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_pth_gives_the_same_logits_in_pytorch_big_nets(name, tmp_path):
    check_torch(name, tmp_path)


@pytest.mark.torch
def test_pth_keeps_names_dtypes_and_zero_d_counters(tmp_path):
    """torch.load sees exactly the arrays written: int64 0-d counters, float64, bool, a transposed view."""
    torch = pytest.importorskip("torch")
    state = {"bn.num_batches_tracked": np.array(7, np.int64),
             "w": np.arange(12, dtype=np.float64).reshape(3, 4).T,
             "mask": np.array([True, False, True]), "big": np.array([2 ** 40, -3], np.int64)}
    mc.io.save_torch(tmp_path / "s.pth", state)
    loaded = torch.load(tmp_path / "s.pth", weights_only=True)
    assert list(loaded) == list(state)
    for key, value in state.items():
        got = loaded[key].numpy()
        assert got.dtype == value.dtype and got.shape == value.shape and np.array_equal(got, value)


# --------------------------------------------------------------------- ONNX

def check_onnx(name, tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model, x = make_model(name), batch(name)
    path = tmp_path / f"{name}.onnx"
    mc.io.export_onnx(model, x[:1], path)        # exported with batch 1, run with batch 3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    error = relative_error(got, logits(model, x))
    assert error < RTOL, f"{name}: onnxruntime logits differ by {error:.2e} (relative)"


@pytest.mark.parametrize("name", FAST + list(SEGMENTATION))
def test_onnx_gives_the_same_logits_in_onnxruntime(name, tmp_path):
    """The encoder-decoders too: every pixel's scores (SegNet's MaxUnpool reads MaxPool's
    indices; segnet_transposed and U-Net up-sample with ConvTranspose)."""
    check_onnx(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_onnx_gives_the_same_logits_in_onnxruntime_big_nets(name, tmp_path):
    check_onnx(name, tmp_path)


def test_onnx_graph_uses_layer_names_and_state_dict_keys(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    model = make_model("fashion_net")
    proto = mc.io.export_onnx(model, batch("fashion_net", 1), tmp_path / "f.onnx")
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for key, value in model.state_dict().items():
        assert np.array_equal(weights[key], value), key
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:5] == ["Conv", "Relu", "Conv", "Relu", "MaxPool"]
    assert "Identity" in ops                           # the dropout, in eval mode
    assert [n.name for n in proto.graph.node][:2] == ["features.0", "features.1"]


def test_onnx_adaptive_pool_that_does_not_tile_its_input(tmp_path):
    """AdaptiveAvgPool2d 5×5 -> 3×3 (overlapping bins) becomes two MatMuls; same numbers."""
    pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model = mc.nn.Sequential(mc.nn.Conv2d(2, 4, 3, rng=0), mc.nn.AdaptiveAvgPool2d(3),
                             mc.nn.Flatten(), mc.nn.Linear(36, 5, rng=1))
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 7)).astype(np.float32)
    mc.io.export_onnx(model, x, tmp_path / "a.onnx")
    got = ort.InferenceSession(str(tmp_path / "a.onnx"),
                               providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert relative_error(got, logits(model, x)) < RTOL


def test_onnx_restores_training_mode(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    model = mc.models.fashion_net().train()
    mc.io.export_onnx(model, batch("fashion_net", 1), tmp_path / "f.onnx")
    assert all(m.training for m in model.modules())


def test_export_onnx_without_onnx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)     # import onnx now fails
    with pytest.raises(ImportError, match="pip install onnx"):
        mc.io.export_onnx(mc.models.fashion_net(), batch("fashion_net", 1), tmp_path / "f.onnx")


# ------------------------------------------------------- weights, round trip

@pytest.mark.parametrize("name", ["fashion_net", "resnet18"])
def test_round_trip_through_pth_and_safetensors_is_bit_exact(name, tmp_path):
    """minicnn -> .pth -> minicnn -> safetensors -> minicnn: every array, bit for bit."""
    original = make_model(name).state_dict()
    mc.io.save_torch(tmp_path / "a.pth", original)
    first = load_pretrained(mc.models.get_model(name), tmp_path / "a.pth").state_dict()
    assert_same_state(original, first)
    mc.io.save_safetensors(tmp_path / "b.safetensors", first)
    second = load_pretrained(mc.models.get_model(name), tmp_path / "b.safetensors").state_dict()
    assert_same_state(original, second)


def test_safetensors_written_by_minicnn_read_by_the_safetensors_library(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    state = make_model("resnet18").state_dict()
    mc.io.save_safetensors(tmp_path / "r.safetensors", state)
    assert_same_state(state, dict(st.load_file(str(tmp_path / "r.safetensors"))))


# ---------------------------------------------------------------------- CLI

def test_cli_export_pth_of_a_shipped_model(tmp_path, capsys):
    out = tmp_path / "fashion.pth"
    assert main(["export", "fashion_net", "--format", "pth", "--out", str(out)]) == 0
    assert_same_state(make_model("fashion_net").state_dict(), mc.io.load_torch(out))


@pytest.mark.parametrize("name", ["segnet", "segnet_transposed", "unet"])
def test_cli_exports_the_shipped_segmentation_nets_by_name(tmp_path, name):
    """Every model `weights list` shows is a name `export` takes, the encoder-decoders too."""
    out = tmp_path / f"{name}.safetensors"
    assert main(["export", name, "--format", "safetensors", "--out", str(out)]) == 0
    assert_same_state(mc.models.registry.get_model(name, pretrained=True).state_dict(),
                      mc.io.load_safetensors(out))


def test_cli_export_onnx_of_a_pth_needs_its_architecture(tmp_path, capsys):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    pth = tmp_path / "f.pth"
    mc.io.save_torch(pth, make_model("fashion_net").state_dict())
    assert main(["export", str(pth), "--format", "onnx", "--out", str(tmp_path / "f.onnx")]) == 2
    assert "--arch" in capsys.readouterr().err
    assert main(["export", str(pth), "--format", "onnx", "--arch", "fashion_net",
                 "--out", str(tmp_path / "f.onnx")]) == 0
    assert (tmp_path / "f.onnx").stat().st_size > 4 * 100_000      # the weights are in it


def test_a_small_net_comes_back_from_pytorch_with_weights_import(tmp_path, capsys):
    """The way back: a .pth of fashion_net (as PyTorch would save it) -> minicnn's .npz."""
    state = make_model("fashion_net").state_dict()
    mc.io.save_torch(tmp_path / "more.pth", state)
    assert main(["weights", "import", str(tmp_path / "more.pth"), "--arch", "fashion_net",
                 "--out", str(tmp_path)]) == 0
    assert_same_state(state, mc.io.load_npz(tmp_path / "fashion_net.npz")[0])
