"""The command line: `minicnn gradcheck` checks every op; bad arguments exit non-zero."""
import subprocess
import sys

import numpy as np
import pytest

from minicnn import cli
from minicnn.bench import opcheck


def test_every_builtin_op_passes_its_gradient_check():
    rows = opcheck.run_all()
    failed = [(r.name, r.max_error) for r in rows if not r.ok]
    assert len(rows) == len(opcheck.CASES) and not failed, failed


def test_gradcheck_command_prints_a_table(capsys):
    assert cli.main(["gradcheck", "--only", "conv2d,max_pool2d"]) == 0
    out = capsys.readouterr().out
    assert "conv2d" in out and "max_pool2d" in out and "2 passed, 0 failed" in out


def test_python_dash_m_reaches_the_cli():
    r = subprocess.run([sys.executable, "-m", "minicnn", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "gradcheck" in r.stdout


def test_unknown_subcommand_exits_non_zero():
    with pytest.raises(SystemExit) as e:
        cli.main(["nope"])
    assert e.value.code != 0


def test_unknown_training_recipe_is_a_clear_error(capsys):
    assert cli.main(["train", "resnet50"]) == 2
    assert "no recipe for 'resnet50'" in capsys.readouterr().err


def test_train_segmentation_model_from_the_command_line(tmp_path, monkeypatch, capsys):
    """`minicnn train segnet` runs the segmentation recipe; the manifest records the command
    without the machine's folders; --scratch saves beside it under another name."""
    import json
    from minicnn.training import recipes as seg_training
    from tests.conftest import fashion_mnist_or_skip
    fashion_mnist_or_skip("test")
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    tiny = dict(size=40, train_length=8, test_length=4, epochs=1, batch_size=4, lr=1e-3,
                pretrained_encoder=True)
    monkeypatch.setitem(seg_training.SEG_RECIPES, "segnet", tiny)
    out = tmp_path / "deep" / "weights"
    assert cli.main(["train", "segnet", "--out", str(out)]) == 0
    assert "test mean IoU" in capsys.readouterr().out
    meta = json.loads((out / "segnet.json").read_text())
    assert meta["provenance"]["command"] == "minicnn train segnet"
    assert str(tmp_path) not in json.dumps(meta)
    assert meta["provenance"]["trunk"].startswith("fashion_net.npz")
    assert cli.main(["train", "segnet", "--scratch", "--out", str(out)]) == 0
    meta = json.loads((out / "segnet_scratch.json").read_text())
    assert meta["provenance"]["command"] == "minicnn train segnet --scratch"
    assert meta["provenance"]["trunk"] is None and meta["architecture"] == "segnet"


def test_recorded_command_keeps_only_the_last_part_of_paths():
    args = cli.build_parser().parse_args(["train", "cifar_net", "--epochs", "3", "--data",
                                          "/some/where/cifar10.tar.gz", "--out", "/x/weights",
                                          "--resume"])
    assert (cli._recorded_command(args)
            == "minicnn train cifar_net --epochs 3 --resume --data cifar10.tar.gz")


def test_train_init_starts_a_new_cycle_from_trained_weights(tmp_path, monkeypatch, capsys):
    """`minicnn train NAME --init FILE --lr LR` starts from FILE's weights (a tiny learning
    rate leaves them nearly unchanged) and the manifest keeps the chain: FILE's sha256,
    command and history, and the seconds of both cycles."""
    import json
    from minicnn import io
    from minicnn.training import recipes as training
    rng = np.random.default_rng(0)

    def tiny_dataset(name, root):
        x = rng.integers(0, 256, (48, 28, 28), dtype=np.uint8)
        return x[:32], rng.integers(0, 10, 32), x[32:], rng.integers(0, 10, 16), \
            [str(i) for i in range(10)], "a tiny test set"
    monkeypatch.setattr(training, "_dataset", tiny_dataset)
    monkeypatch.setitem(training.RECIPES, "fashion_net",
                        dict(dataset="fashion_mnist", epochs=1, batch_size=16, lr=1e-3,
                             optimizer="adam", augment=None))
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli.main(["train", "fashion_net", "--out", str(first)]) == 0
    assert cli.main(["train", "fashion_net", "--epochs", "2", "--lr", "1e-9", "--init",
                     str(first / "fashion_net.npz"), "--out", str(second)]) == 0
    w1, m1 = io.load_npz(first / "fashion_net.npz")
    w2, m2 = io.load_npz(second / "fashion_net.npz")
    assert max(float(np.abs(w1[k] - w2[k]).max()) for k in w1) < 1e-6   # 4 Adam steps of 1e-9
    prov = m2["provenance"]
    assert prov["command"] == "minicnn train fashion_net --epochs 2 --lr 1e-09 --init fashion_net.npz"
    assert prov["recipe"]["lr"] == 1e-9 and len(prov["history"]) == 2
    start = prov["started_from"]
    assert start["sha256"] == m1["sha256"] and start["file"] == "fashion_net.npz"
    assert start["history"] == m1["provenance"]["history"]
    assert start["command"] == "minicnn train fashion_net"
    assert prov["train_seconds_all_cycles"] >= prov["train_seconds_total"]
    assert str(tmp_path) not in json.dumps(m2)


def test_train_init_refuses_weights_of_another_architecture(tmp_path, capsys):
    from minicnn.models import registry
    src = registry.find_shipped("fashion_net")
    if src is None:
        pytest.skip("the shipped fashion_net weights are not installed")
    assert cli.main(["train", "cifar_net", "--init", str(src), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "architecture 'fashion_net', expected 'cifar_net'" in err and "fashion_net.npz" in err


def test_lr_and_init_are_refused_for_segmentation_models(capsys):
    assert cli.main(["train", "segnet", "--lr", "1e-3"]) == 2
    assert "--lr and --init" in capsys.readouterr().err
