"""The files an export writes: the same bytes on every run, the metadata each format carries,
the format taken from the extension, and every path checked before anything is written."""
import hashlib
import json
import struct
import time
import zipfile

import numpy as np
import pytest

import minicnn as mc
from minicnn.cli import main
from minicnn.io import torch_write


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------- reproducible .pth

def test_the_same_model_gives_the_same_pth_bytes_at_another_time(tmp_path, monkeypatch):
    """No clock in the file: written again an hour later (as the clock says), same sha256."""
    state = mc.models.fashion_net(pretrained=True).state_dict()
    mc.io.save_torch(tmp_path / "net.pth", state)
    first = sha256(tmp_path / "net.pth")
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    (tmp_path / "net.pth").unlink()
    mc.io.save_torch(tmp_path / "net.pth", state)
    assert sha256(tmp_path / "net.pth") == first


def test_pth_records_start_at_multiples_of_64_like_torch_save(tmp_path):
    """Each record's data begins at a multiple of 64 (local header 30 bytes + name + extra)."""
    state = {"a": np.arange(5, dtype=np.float32), "b": np.ones((3, 7), np.float64),
             "c": np.array(3, np.int64)}
    mc.io.save_torch(tmp_path / "s.pth", state)
    raw = (tmp_path / "s.pth").read_bytes()
    with zipfile.ZipFile(tmp_path / "s.pth") as archive:
        infos = archive.infolist()
    assert [i.date_time for i in infos] == [torch_write.FIXED_DATE] * len(infos)
    for info in infos:
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:
                                                       info.header_offset + 30])
        assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
    assert {k: v.tolist() for k, v in mc.io.load_torch(tmp_path / "s.pth").items()} == \
        {k: v.tolist() for k, v in state.items()}


@pytest.mark.torch
def test_pytorch_memory_maps_the_aligned_pth(tmp_path):
    torch = pytest.importorskip("torch")
    state = mc.models.fashion_net(pretrained=True).state_dict()
    mc.io.save_torch(tmp_path / "net.pth", state)
    loaded = torch.load(tmp_path / "net.pth", weights_only=True, mmap=True)
    assert all(np.array_equal(loaded[k].numpy(), v) for k, v in state.items())


# ------------------------------------------------------------------- metadata

def expected_meta(model):
    return {"architecture": model.arch, "labels": model.labels,
            "preprocessing": model.preprocess.to_dict()}


@pytest.mark.parametrize("name", ["fashion_net", "segnet"])
@pytest.mark.parametrize("ext", [".pth", ".safetensors", ".onnx"])
def test_every_format_carries_architecture_labels_and_preprocessing(name, ext, tmp_path):
    if ext == ".onnx":
        pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    model = mc.models.get_model(name, pretrained=True)
    size = (32, 32) if name == "segnet" else None       # segnet takes any multiple of 8
    written = mc.io.export_model(model, tmp_path / f"m{ext}", size=size)
    names = [p.rsplit("/", 1)[-1] for p in written]
    assert names == (["m.pth", "m.pth.json"] if ext == ".pth" else [f"m{ext}"])
    meta = mc.io.read_metadata(tmp_path / f"m{ext}")
    assert meta == expected_meta(model)
    assert mc.data.Preprocess.from_dict(meta["preprocessing"]) == model.preprocess


@pytest.mark.torch
def test_the_pth_stays_a_plain_state_dict_for_pytorch(tmp_path):
    """The metadata lives beside it: torch.load(weights_only=True) gives tensors only."""
    torch = pytest.importorskip("torch")
    model = mc.models.fashion_net(pretrained=True)
    mc.io.export_model(model, tmp_path / "f.pth")
    loaded = torch.load(tmp_path / "f.pth", weights_only=True)
    assert list(loaded) == list(model.state_dict())
    side = json.loads((tmp_path / "f.pth.json").read_text())
    assert side["file"] == "f.pth" and side["sha256"] == sha256(tmp_path / "f.pth")


def test_a_pth_json_of_another_file_is_refused(tmp_path):
    """The .pth replaced after the export: its old .json would give wrong labels."""
    mc.io.export_model(mc.models.fashion_net(pretrained=True), tmp_path / "f.pth")
    mc.io.save_torch(tmp_path / "f.pth", mc.models.fashion_net(seed=3).state_dict())
    with pytest.raises(ValueError, match="describes another file"):
        mc.io.read_metadata(tmp_path / "f.pth")
    (tmp_path / "f.pth.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"f\.pth\.json is missing"):
        mc.io.read_metadata(tmp_path / "f.pth")


def test_safetensors_metadata_read_by_the_safetensors_library(tmp_path):
    st = pytest.importorskip("safetensors", reason="safetensors is not installed")
    model = mc.models.fashion_net(pretrained=True)
    mc.io.export_model(model, tmp_path / "f.safetensors")
    with st.safe_open(str(tmp_path / "f.safetensors"), framework="numpy") as f:
        meta = f.metadata()
    assert meta["architecture"] == "fashion_net"
    assert json.loads(meta["labels"]) == model.labels


# ------------------------------------------------------------ formats and paths

@pytest.mark.parametrize("fmt, out", [("pth", "f.onnx"), ("onnx", "f.pth"),
                                      ("safetensors", "f.pt")])
def test_a_format_that_contradicts_the_extension_is_refused(fmt, out, tmp_path):
    with pytest.raises(ValueError, match=f"says .* but the format asked is {fmt}"):
        mc.io.export_model(mc.models.fashion_net(), tmp_path / out, fmt)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_extension_needs_a_format(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the format"):
        mc.io.export_model(mc.models.fashion_net(), tmp_path / "f.bin")
    assert mc.io.export_model(mc.models.fashion_net(), tmp_path / "f.bin", "pth")[0].endswith("f.bin")


@pytest.mark.parametrize("write", [
    lambda p: mc.io.save_torch(p, {"w": np.ones(2, np.float32)}),
    lambda p: mc.io.save_safetensors(p, {"w": np.ones(2, np.float32)}),
    lambda p: mc.io.export_model(mc.models.fashion_net(), p.with_suffix(".pth"))])
def test_a_missing_folder_is_named_not_a_temporary_file(write, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        write(tmp_path / "missing" / "f.pth")
    assert f"its folder {tmp_path / 'missing'} does not exist" in str(err.value)
    assert ".partial" not in str(err.value)


# ------------------------------------------------------------------------ CLI

def test_cli_takes_the_format_from_out_and_refuses_a_contradiction(tmp_path, capsys):
    assert main(["export", "fashion_net", "--format", "pth", "--out", str(tmp_path / "f.onnx")]) == 2
    assert "the extension .onnx says onnx but the format asked is pth" in capsys.readouterr().err
    assert not (tmp_path / "f.onnx").exists()
    assert main(["export", "fashion_net", "--out", str(tmp_path / "f.safetensors")]) == 0
    assert mc.io.read_metadata(tmp_path / "f.safetensors")["architecture"] == "fashion_net"


def test_cli_checks_the_output_folder_before_loading_anything(tmp_path, capsys):
    assert main(["export", "fashion_net", "--out", str(tmp_path / "no" / "f.pth")]) == 2
    assert f"its folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--opset", "9"], "--opset 9 is not supported: give one of 13.."),
    (["--opset", "17", "--format", "pth"], "--opset and --dynamic-size are ONNX settings"),
    (["--dynamic-size", "--format", "pth"], "--opset and --dynamic-size are ONNX settings"),
])
def test_cli_opset_is_checked_up_front(args, message, tmp_path, capsys):
    out = tmp_path / ("f.pth" if "pth" in args else "f.onnx")
    assert main(["export", "fashion_net", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_opset_21_is_stamped_with_ir_10(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    assert main(["export", "segnet", "--out", str(tmp_path / "s.onnx"), "--size", "32", "32",
                 "--opset", "21"]) == 0
    proto = onnx.load(str(tmp_path / "s.onnx"))
    assert (proto.opset_import[0].version, proto.ir_version) == (21, 10)


@pytest.mark.parametrize("ext", [".pth", ".safetensors"])
def test_an_exported_file_comes_back_with_its_labels_and_preprocessing(ext, tmp_path, capsys):
    """Nothing lost on the way back: load_pretrained and `minicnn export` (no --arch needed)
    read the metadata the export wrote."""
    model = mc.models.cifar_net(pretrained=True)
    mc.io.export_model(model, tmp_path / f"c{ext}")
    back = mc.models.registry.load_pretrained(mc.models.cifar_net(), tmp_path / f"c{ext}")
    assert back.labels == model.labels and back.preprocess == model.preprocess
    assert main(["export", str(tmp_path / f"c{ext}"), "--out", str(tmp_path / "c.onnx")]) == 0
    assert mc.io.read_metadata(tmp_path / "c.onnx")["labels"] == model.labels


def test_foreign_safetensors_metadata_is_not_taken_for_ours(tmp_path):
    """A file from elsewhere with its own __metadata__ loads as before (no labels invented)."""
    state = mc.models.cifar_net(pretrained=True).state_dict()
    mc.io.save_safetensors(tmp_path / "x.safetensors", state,
                           metadata={"format": "pt", "labels": "not json ["})
    back = mc.models.registry.load_pretrained(mc.models.cifar_net(), tmp_path / "x.safetensors")
    assert not getattr(back, "labels", None)


@pytest.mark.parametrize("name", ["segnet", "unet"])
def test_cli_exports_an_any_size_net_to_onnx_without_size(name, tmp_path):
    """Their preprocessing has no input size: the graph takes any N, H, W."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    assert main(["export", name, "--out", str(tmp_path / "s.onnx")]) == 0
    x = np.random.default_rng(0).standard_normal((2, 1, 40, 24)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": x})[0].shape == (2, 11, 40, 24)
