"""Runaway runs and silently wrong results: exploding training, non-finite preprocessing,
float images cast to black, a shipped file replaced on the word of another test set,
export sizes that would allocate tens of gigabytes.

Each test builds its input in tmp_path, runs the command as a user would, and checks
the exit code, the one-line message, and (where files could be lost) the hashes of the
files around before and after.
"""
import gzip
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import cli, training
from minicnn.data.images import Preprocess
from minicnn.models import pretrained
from minicnn.training import loop, recipes

from .test_hostile import PEAK_MB, run_capped


ROOT = Path(__file__).resolve().parents[1]


def hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).iterdir()) if p.is_file()}


def one_line(err, *words):
    lines = [line for line in err.splitlines() if line.startswith("minicnn ")]
    assert "Traceback" not in err and len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])


# ------------------------------------------------------------ exploding training
def test_a_run_whose_loss_explodes_but_stays_finite_writes_nothing_and_fails(tiny_training,
                                                                              tmp_path, capsys):
    """lr 1e4: the loss jumps from 2.3 to ~1e32 -- finite, so it used to train on, exit 0
    and save weights whose outputs are absurd. A loss a million times the first one ends
    the run: exit non-zero, the step named, nothing written."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("a file of the user's")
    before = hashes(out)
    assert cli.main(["train", "fashion_net", "--lr", "1e4", "--out", str(out)]) == 2
    one_line(capsys.readouterr().err, "diverged", "epoch 1, step 2", "from 2.3")
    assert hashes(out) == before
    assert not list((tmp_path / "home").rglob("*.ckpt.npz"))        # no checkpoint either


def test_non_finite_test_outputs_end_the_run_instead_of_scoring_them():
    """argmax of NaN logits is 0, so NaN outputs used to get an accuracy like any other."""
    net = mc.nn.Sequential(mc.nn.Flatten(), mc.nn.Linear(4, 3))
    net.eval()
    x = np.ones((2, 1, 2, 2), np.float32)
    assert loop.test_accuracy(net, (x, np.zeros(2, int)))["test_acc"] in (0.0, 0.5, 1.0)
    net[1].weight.data[...] = np.nan
    with pytest.raises(training.TrainingDiverged, match="NaN or inf on 2 of 2 test images"):
        loop.test_accuracy(net, (x, np.zeros(2, int)))


def test_evaluate_refuses_nan_logits_and_mismatched_labels_instead_of_scoring_them():
    """``training.evaluate`` is the public scorer (README, shipped-weights checks): NaN logits
    argmax to class 0 and used to score like guesses; x and y of different lengths broadcast
    or failed with NumPy's wording."""
    net = mc.nn.Sequential(mc.nn.Flatten(), mc.nn.Linear(4, 3))
    x = np.ones((2, 1, 2, 2), np.float32)
    assert training.evaluate(net, x, np.zeros(2, int)) in (0.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="x holds 2 images but y 3 labels"):
        training.evaluate(net, x, np.zeros(3, int))
    net[1].weight.data[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite for 2 of 2 images"):
        training.evaluate(net, x, np.zeros(2, int))


def test_exploded_weights_are_never_saved(tmp_path):
    """Weights of about 1e12 are finite, yet every output of such a net is NaN or absurd."""
    with pytest.raises(training.TrainingDiverged, match="over 1e.08.*'w'"):
        recipes.save_result(str(tmp_path / "x.npz"), {"w": np.full(3, 1e12, np.float32)}, {})
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------ non-finite preprocessing
@pytest.mark.parametrize("bad", [dict(std=(float("nan"),) * 3), dict(mean=(0.0, 0.0, float("inf"))),
                                 dict(scale=float("nan")), dict(input_size=(100000, 100000))])
def test_preprocess_refuses_non_finite_constants(bad):
    """std NaN used to give NaN inputs and NaN logits without a word."""
    with pytest.raises(ValueError, match="Preprocess: (std|mean|scale|input_size) .*(finite|4096)"):
        Preprocess(**bad)


def test_preprocess_refuses_strings_and_lists_of_strings():
    """A string array cast to float32 'worked' (np.array(['1']).astype(float))."""
    pre = Preprocess(mean=(0.5,), std=(0.5,), input_size=(2, 2))
    with pytest.raises(TypeError, match="array of numbers.*<U1"):
        pre.preprocess(np.array([["1", "2"], ["3", "4"]]))
    assert pre.preprocess([[0, 255], [255, 0]]).shape == (1, 1, 2, 2)   # a list of numbers is fine


def _fashion_file(tmp_path, **preprocessing):
    net = mc.models.fashion_net(pretrained=False)
    state = {k: mc.to_numpy(v) for k, v in net.state_dict().items()}
    pre = {**net.preprocess.to_dict(), **preprocessing}
    path = tmp_path / "net.npz"
    mc.io.save_npz(path, state, {"architecture": "fashion_net", "preprocessing": pre})
    return path


def test_a_manifest_with_std_nan_is_refused_naming_the_file(tmp_path, capsys):
    path = _fashion_file(tmp_path, std=[float("nan")])
    with pytest.raises(ValueError, match=r"net.npz: its manifest's preprocessing is refused.*std"):
        pretrained.load_pretrained(mc.models.fashion_net(pretrained=False), path)
    before = hashes(tmp_path)
    assert cli.main(["export", str(path), "--format", "pth", "--out",
                     str(tmp_path / "x.pth")]) == 2
    one_line(capsys.readouterr().err, str(path), "std must be finite")
    assert hashes(tmp_path) == before


def test_exploded_weights_are_refused_naming_the_key(tmp_path):
    """Finite weights of about 1e12 (what lr 1e12 left) make every output NaN or absurd."""
    net = mc.models.fashion_net(pretrained=False)
    state = {k: mc.to_numpy(v).copy() for k, v in net.state_dict().items()}
    key = next(iter(state))
    state[key][...] = 1e12
    mc.io.save_npz(tmp_path / "n.npz", state, {"architecture": "fashion_net"})
    with pytest.raises(ValueError, match=f"n.npz: weight '{key}' reaches 1e.12, over 1e.08"):
        pretrained.load_pretrained(mc.models.fashion_net(pretrained=False), tmp_path / "n.npz")


# ------------------------------------------------------------ export sizes
def test_export_onnx_with_a_huge_size_is_refused_before_allocating(tmp_path):
    """--size 100000 100000 used to build a 37 GB example input; run under the 1.5 GB
    ceiling so a regression fails instead of swapping the machine."""
    pytest.importorskip("onnx")
    out = tmp_path / "x.onnx"
    result = run_cli_capped(["export", "fashion_net", "--format", "onnx", "--size", "100000",
                             "100000", "--out", str(out)])
    assert result["rc"] == 2 and "--size 100000 100000" in result["err"], result
    assert not out.exists()
    result = run_cli_capped(["export", "fashion_net", "--format", "onnx", "--size", "0", "28",
                             "--out", str(out)])
    assert result["rc"] == 2 and "--size 0 28" in result["err"], result


def test_a_manifest_input_size_of_1e5_is_refused_naming_the_file(tmp_path):
    pytest.importorskip("onnx")
    path = _fashion_file(tmp_path, input_size=[1e5, 1e5])
    result = run_cli_capped(["export", str(path), "--format", "onnx", "--out",
                             str(tmp_path / "x.onnx")])
    assert result["rc"] == 2 and str(path) in result["err"] and "input_size" in result["err"]
    assert not (tmp_path / "x.onnx").exists()


def run_cli_capped(argv):
    result = refused_or_ran(f"from minicnn import cli\nimport sys, io\n"
                            f"err = io.StringIO(); sys.stderr = err\n"
                            f"rc = cli.main({argv!r})\nsys.stderr = sys.__stderr__\n"
                            f"raise SystemExit(json.dumps({{'rc': rc, 'err': err.getvalue()}}))")
    return json.loads(result["message"])


def refused_or_ran(code):
    result = run_capped(code, timeout=120)
    assert result.get("type") == "SystemExit" and result["peak_mb"] < PEAK_MB, result
    return result


def test_export_never_overwrites_its_own_source(tmp_path, capsys):
    path = _fashion_file(tmp_path)
    before = hashes(tmp_path)
    assert cli.main(["export", str(path), "--format", "safetensors", "--out", str(path)]) == 2
    one_line(capsys.readouterr().err, f"--out {path}", "being read")
    assert hashes(tmp_path) == before


# ------------------------------------------------------------ dataset files
def _idx(path, array, type_byte):
    header = struct.pack(">BBBB", 0, 0, type_byte, array.ndim) + \
        struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(array.dtype.newbyteorder(">")).tobytes()))


def test_fashion_mnist_float_images_are_refused_not_cast_to_black(tmp_path, home, capsys):
    """IDX float32 images in [0, 1] used to become uint8 0/1 (all black) and train on."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 32), ("t10k", 16)):
        _idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.random((n, 28, 28)).astype(np.float32), 0x0D)
        _idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8), 0x08)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz' holds float32 images in \[3.2"):
        mc.data.load_fashion_mnist("train", root=tmp_path, download=False)
    out = tmp_path / "o"
    assert cli.main(["train", "fashion_net", "--data", str(tmp_path), "--epochs", "1",
                     "--out", str(out)]) == 2
    one_line(capsys.readouterr().err, "train-images-idx3-ubyte.gz", "float32", "uint8")
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("labels, message", [
    (np.arange(16, dtype=np.int32) * 10, "labels from 0 to 150"),
    (np.zeros(16, np.float64), "float64 labels"),
])
def test_fashion_mnist_labels_of_the_wrong_kind_are_refused(tmp_path, home, labels, message):
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((16, 28, 28), np.uint8), 0x08)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, {4: 0x0C, 8: 0x0E}[labels.itemsize])
    with pytest.raises(ValueError, match=message):
        mc.data.load_fashion_mnist("test", root=tmp_path, download=False)


# ------------------------------------------------------------ --replace-shipped
def test_replace_shipped_compares_both_nets_on_the_same_test_set(tiny_training, tmp_path,
                                                                 monkeypatch, capsys):
    """The shipped file's manifest says 0.0 on 3,000 other images; on this run's test set
    it gets every image right. It used to be replaced by a run scoring less on the images
    it was compared on; now both are measured on this run's test set and it is kept."""
    shipped = ROOT / "weights" / "fashion_net.npz"
    if not shipped.is_file():
        pytest.skip("no shipped fashion_net.npz in weights/")
    fake_repo = tmp_path / "repo-weights"
    fake_repo.mkdir()
    state, meta = mc.io.load_npz(shipped)
    meta["accuracy"] = {"value": 0.0, "on": "3,000 other images"}
    mc.io.save_npz(fake_repo / "fashion_net.npz", state,
                   {k: v for k, v in meta.items() if k not in ("sha256", "arrays")})
    monkeypatch.setattr(pretrained, "REPO_WEIGHTS", fake_repo)
    net = mc.models.fashion_net(pretrained=True)

    def test_set_the_shipped_net_gets_right(name, root):
        xtr, ytr, xte, _, labels, on = tiny_training(name, root)
        return xtr, ytr, xte, loop.predict(net, net.preprocess.preprocess(xte)).argmax(1), labels, on
    monkeypatch.setattr(recipes, "_dataset", test_set_the_shipped_net_gets_right)
    before = hashes(fake_repo)
    assert cli.main(["train", "fashion_net", "--epochs", "1", "--replace-shipped"]) == 1
    one_line(capsys.readouterr().err, "kept", "it scores 1.0000 on a tiny test set",
             "on the same images", "fashion_net.candidate.npz")
    after = hashes(fake_repo)
    assert {k: after[k] for k in before} == before
    assert (fake_repo / "fashion_net.candidate.npz").is_file()


def test_a_manifest_score_on_another_test_set_is_not_compared(tmp_path):
    """Without a way to rescore, a score measured on other images is not comparable."""
    path = tmp_path / "w.npz"
    mc.io.save_npz(path, {"w": np.ones(2, np.float32)},
                   {"architecture": "x", "accuracy": {"value": 0.1, "on": "set A"}})
    before = hashes(tmp_path)
    with pytest.raises(recipes.NotReplaced, match="measured on set A, this run's on set B"):
        recipes.save_result(str(path), {"w": np.zeros(2, np.float32)},
                            {"architecture": "x", "accuracy": {"value": 0.9, "on": "set B"}})
    assert {k: v for k, v in hashes(tmp_path).items() if k in before} == before


# ------------------------------------------------------------ assignment make --force
def tree_hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_assignment_force_replaces_only_the_files_make_wrote(tmp_path, capsys):
    """--force used to replace the whole tests/ folder, deleting a test the student added.
    The manifest lists what make wrote; only those files are replaced or removed."""
    out = tmp_path / "hw"
    assert cli.main(["assignment", "make", str(out), "--parts", "saliency"]) == 0
    (out / "tests" / "test_mine.py").write_text("def test_mine():\n    assert True\n")
    (out / "minicnn" / "my_helper.py").write_text("HELP = 1\n")
    (out / "notes.txt").write_text("mine")
    mine = ["tests/test_mine.py", "minicnn/my_helper.py", "notes.txt"]
    before = tree_hashes(out)
    assert cli.main(["assignment", "make", str(out), "--parts", "relu_rules", "--force"]) == 0
    after = tree_hashes(out)
    assert {k: after[k] for k in mine} == {k: before[k] for k in mine}
    assert sorted(p.name for p in (out / "tests").iterdir()) == ["test_mine.py",
                                                                   "test_relu_rules.py"]
    assert json.loads((out / "assignment.json").read_text())["parts"] == ["relu_rules"]

    # a file of the user's where a generated one would go: refused, nothing changed
    (out / "tests" / "test_conv2d.py").write_text("# my own conv2d tests\n")
    before = tree_hashes(out)
    capsys.readouterr()
    assert cli.main(["assignment", "make", str(out), "--parts", "conv2d", "--force"]) == 2
    one_line(capsys.readouterr().err, str(out / "tests" / "test_conv2d.py"), "nothing was changed")
    assert tree_hashes(out) == before
