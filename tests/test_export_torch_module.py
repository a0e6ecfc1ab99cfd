"""`minicnn export --torch-module NAME`: the PyTorch source of every shipped architecture.

For every architecture of the registry the written file is imported, its ``build()`` takes the
.pth (and the .safetensors) minicnn exported with ``strict=True``, and gives minicnn's outputs
— logits, or a score per class and pixel for the encoder-decoders — within 1e-5 relative
(largest difference over the largest output, in float64). The ImageNet nets use random weights
with non-trivial BatchNorm statistics at small input sizes (see test_export.py).
"""
import importlib.util

import numpy as np
import pytest

import minicnn as mc
from minicnn.cli import main
from minicnn.models.registry import ARCHITECTURES
from minicnn.models.torch_source import torch_module_source
from tests.test_export import FAST, SEGMENTATION, SLOW, batch, logits, make_model, relative_error

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

RTOL = 1e-5


def import_source(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(name, tmp_path):
    model, x = make_model(name), batch(name)
    (tmp_path / f"{name}_torch.py").write_text(torch_module_source(name))
    net = import_source(tmp_path / f"{name}_torch.py").build().eval()
    mc.io.export_model(model, tmp_path / f"{name}.pth")
    mc.io.export_model(model, tmp_path / f"{name}.safetensors")
    ref = logits(model, x)
    from safetensors.torch import load_file
    for state in (torch.load(tmp_path / f"{name}.pth", weights_only=True),
                  load_file(str(tmp_path / f"{name}.safetensors"))):
        net.load_state_dict(state, strict=True)
        with torch.no_grad():
            got = net(torch.from_numpy(x)).numpy()
        assert got.shape == ref.shape
        error = relative_error(got.astype(np.float64), ref.astype(np.float64))
        assert error < RTOL, f"{name}: PyTorch differs from minicnn by {error:.2e} (relative)"


def test_every_architecture_has_a_torch_source():
    assert set(FAST + SLOW + list(SEGMENTATION)) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", FAST + list(SEGMENTATION))
def test_torch_source_loads_the_export_strictly_and_agrees(name, tmp_path):
    check(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_torch_source_loads_the_export_strictly_and_agrees_big_nets(name, tmp_path):
    check(name, tmp_path)


def test_cli_writes_the_source_file(tmp_path, capsys):
    out = tmp_path / "unet_torch.py"
    assert main(["export", "--torch-module", "unet", "--out", str(out)]) == 0
    assert out.read_text() == torch_module_source("unet")
    assert main(["export", "--torch-module", "lenet", "--out", str(out)]) == 2
    assert "no PyTorch source for 'lenet'" in capsys.readouterr().err


def real_imagenet_model(name):
    """EfficientNet-Lite0 from its PyPI package, SqueezeNet 1.1 from the development data."""
    from tests.conftest import SHARED_DATA
    if name == "efficientnet_lite0":
        try:
            return mc.models.get_model(name, pretrained=True)
        except FileNotFoundError as err:
            pytest.skip(f"EfficientNet-Lite0 weights not installed: {err}")
    path = f"{SHARED_DATA}/imagenet/{name}.pth"
    if not __import__("os").path.exists(path):
        pytest.skip(f"{path} is absent (development data)")
    model = mc.models.registry.load_pretrained(mc.models.get_model(name), path).eval()
    model.labels = mc.data.imagenet_classes()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite0", "squeezenet1_1"])
def test_real_imagenet_weights_keep_their_top5_in_pytorch_and_onnxruntime(name, tmp_path):
    """Trained weights on two real-looking 224×224 inputs (smooth random images, preprocessed
    as the metadata says): within 1e-5 relative, the same top-5 classes in both engines."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model = real_imagenet_model(name)
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (2, 8, 8, 3))
    pixels = np.kron(small, np.ones((1, 28, 28, 1))).astype(np.uint8)       # 224×224 blocks
    x = model.preprocess.preprocess(pixels)
    ref = logits(model, x)
    mc.io.export_model(model, tmp_path / "m.onnx")
    mc.io.export_model(model, tmp_path / "m.pth")
    (tmp_path / "t.py").write_text(torch_module_source(name))
    net = import_source(tmp_path / "t.py").build().eval()
    net.load_state_dict(torch.load(tmp_path / "m.pth", weights_only=True), strict=True)
    with torch.no_grad():
        from_torch = net(torch.from_numpy(x)).numpy()
    from_onnx = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                     providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    ranked = np.sort(ref, 1)[:, ::-1]
    clear = ranked[:, 4] - ranked[:, 5] > 1e-3 * np.abs(ref).max()     # far above 1e-5: no tie
    assert clear.all(), "the 5th and 6th classes nearly tie: pick other pixels"
    for got in (from_torch, from_onnx):
        assert relative_error(got.astype(np.float64), ref.astype(np.float64)) < RTOL
        assert [set(r) for r in np.argsort(-got, 1)[:, :5]] == \
            [set(r) for r in np.argsort(-ref, 1)[:, :5]]
    assert mc.io.read_metadata(tmp_path / "m.onnx")["labels"] == model.labels
