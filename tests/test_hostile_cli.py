"""Weak answers to bad input: internal errors (exit 3) or HTTP 500 where a one-line error
belongs, messages that do not name the argument or file, wrong exit codes.

Each test gives the bad input the way a user would and checks the exit code (2 for a
usage error), that the one line names what was wrong, and that no traceback shows.
"""
import io
import json
import pickle

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import minicnn as mc
from minicnn import cli
from minicnn.data.images import load_image

from .test_hostile_runs import one_line


def usage_error(argv, capsys, *words):
    """argparse refuses ``argv``: exit 2, the option named."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("port, why", [("-1", "0..65535"), ("99999", "0..65535"),
                                       ("http", "whole number")])
def test_explore_port_out_of_range_is_a_usage_error(port, why, capsys):
    """--port 99999 used to bind port 34463 (99999 mod 65536) without a word."""
    usage_error(["explore", "--port", port], capsys, "--port", why)


@pytest.mark.parametrize("argv", [["train", "fashion_net"], ["demo"], ["gradcheck"]])
def test_a_negative_seed_is_a_usage_error_naming_seed(argv, capsys):
    usage_error(argv + ["--seed", "-1"], capsys, "--seed", "between 0 and 2**32-1")


def test_weights_import_without_a_file_or_arch_says_which(capsys, tmp_path):
    """It used to say 'NoneType' (no file) and exit 1 (no --arch)."""
    assert cli.main(["weights", "import"]) == 2
    one_line(capsys.readouterr().err, "import needs FILE")
    assert cli.main(["weights", "fetch"]) == 2
    one_line(capsys.readouterr().err, "fetch needs NAME")
    assert cli.main(["weights", "import", str(tmp_path / "x.pth")]) == 2
    one_line(capsys.readouterr().err, "needs --arch")


class Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (print, (self.target,))


def test_a_cifar_batch_whose_pickle_is_refused_is_a_one_line_error(tmp_path, home, capsys):
    """It used to end as an internal error (exit 3) with a traceback in a log file."""
    data = tmp_path / "cifar"
    data.mkdir()
    for name in ("data_batch_1", "test_batch"):
        (data / name).write_bytes(pickle.dumps({b"data": Payload("x"), b"labels": [0]},
                                               protocol=2))
    assert cli.main(["train", "cifar_net", "--data", str(data), "--epochs", "1",
                     "--out", str(tmp_path / "o")]) == 2
    one_line(capsys.readouterr().err, "data_batch_1", "refused to load global", "print")


def test_resume_names_the_checkpoint_when_it_is_damaged_or_past_the_run(tiny_training, tmp_path,
                                                                        home, capsys):
    out = str(tmp_path / "o")
    assert cli.main(["train", "fashion_net", "--out", out]) == 0          # 2 epochs
    checkpoint = home / "train" / "fashion_net-seed0.ckpt.npz"
    assert checkpoint.is_file()
    capsys.readouterr()
    assert cli.main(["train", "fashion_net", "--epochs", "1", "--resume", "--out", out]) == 2
    one_line(capsys.readouterr().err, str(checkpoint), "past epoch 2", "--epochs 3")
    checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint")
    assert cli.main(["train", "fashion_net", "--resume", "--out", out]) == 2
    one_line(capsys.readouterr().err, str(checkpoint), "cannot be used", "delete it")


def test_init_from_a_manifest_whose_history_is_a_string_trains(tiny_training, tmp_path, home,
                                                               capsys):
    """A hand-edited manifest (history "oops") used to end in an internal error."""
    net = mc.models.fashion_net(pretrained=False)
    init = tmp_path / "start.npz"
    mc.io.save_npz(init, {k: mc.to_numpy(v) for k, v in net.state_dict().items()},
                   {"architecture": "fashion_net", "accuracy": "high",
                    "provenance": {"history": "oops", "started_from": {"history": [1, "x"]}}})
    assert cli.main(["train", "fashion_net", "--epochs", "1", "--init", str(init),
                     "--out", str(tmp_path / "o")]) == 0
    meta = json.loads((tmp_path / "o" / "fashion_net.json").read_text())
    assert meta["provenance"]["started_from"]["history"] == "oops"     # kept as it was


def png_with_text_bomb():
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (4 << 20), zip=True)     # inflates past Pillow's limit
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_load_image_names_the_file_pillow_refuses(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_text_bomb())
    with pytest.raises(ValueError, match=r"load_image: Pillow refuses '.*bomb.png'"):
        load_image(path)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from minicnn.explore.server import build, create_app
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        yield create_app(build("fashion_net", installed=False, start=False)).test_client()


def image_bytes(mode, size, fmt):
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("body, kind, message", [
    ("[1, 2]", "application/json", "must be an object"),
    ('"a string"', "application/json", "must be an object"),
    ("[" * 100_000 + "]" * 100_000, "application/json", "nested too deeply"),
    (image_bytes("RGB", (1, 60), "PNG"), "image/png", "frame: cannot be used"),
    (image_bytes("LAB", (8, 8), "TIFF"), "image/tiff", "frame: cannot be used"),
    (png_with_text_bomb(), "image/png", "frame: "),
], ids=["json-array", "json-string", "json-nested-100000", "frame-1x60", "lab-tiff",
        "png-text-bomb"])
def test_the_explorer_answers_400_to_bad_inputs(client, body, kind, message):
    """Each used to answer 500 (a server error) instead of saying what was wrong."""
    r = client.post("/api/input", data=body, content_type=kind)
    assert r.status_code == 400 and message in r.json["error"], (r.status_code, r.json)
    assert client.post("/api/input", json={"sample": 0}).status_code == 200   # still serving


def test_models_refuse_python_lists_of_strings_clearly():
    net = mc.models.fashion_net(pretrained=False)
    with pytest.raises(TypeError, match="images must be an array of numbers"):
        net.preprocess.preprocess([["a"] * 28] * 28)
    x = net.preprocess.preprocess(np.zeros((28, 28), np.uint8))
    assert x.shape == (1, 1, 28, 28) and np.isfinite(x).all()


@pytest.mark.parametrize("x", [[[0.0] * 28] * 28, np.array([["a"]]), "image.png"],
                         ids=["list", "strings", "a-path"])
def test_a_model_called_on_a_list_or_text_says_what_it_takes(x):
    """A list used to fail deep inside with "'list' object has no attribute 'shape'"."""
    net = mc.models.fashion_net(pretrained=False)
    with pytest.raises(TypeError, match=r"SmallVGG takes a Tensor or an array of numbers"):
        net(x)


def test_an_unwritable_checkpoint_folder_is_found_before_the_first_step(tiny_training, tmp_path,
                                                                         monkeypatch, capsys):
    """It used to be found when the first checkpoint was written, after a full epoch."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MINICNN_HOME", str(blocker / "home"))
    assert cli.main(["train", "fashion_net", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    one_line(err, "cannot write checkpoints into", str(blocker), "nothing was trained")
    assert '"epoch": 1' not in err and "epoch 1/" not in err
