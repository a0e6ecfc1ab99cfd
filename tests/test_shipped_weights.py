"""The weights minicnn ships: they load, match their manifest's hash, and score what it says."""
import json
import os

import pytest

import minicnn as mc
from minicnn.models.registry import REPO_WEIGHTS

SHIPPED = {"fashion_net": "fashion_mnist", "cifar_net": "cifar10"}


def _manifest(name):
    path = REPO_WEIGHTS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"weights/{name}.npz is not shipped in this checkout")
    return json.loads(path.read_text())


def _test_set(name):
    try:
        if SHIPPED[name] == "fashion_mnist":
            return mc.data.load_fashion_mnist("test", download=False)
        root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10",
                            "cifar10-jpeg.tar.gz")
        return mc.data.load_cifar10("test", root=root if os.path.exists(root) else None,
                                    download=False)
    except (FileNotFoundError, OSError) as e:
        pytest.skip(f"{SHIPPED[name]} test set not available: {e}")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_match_manifest_hash(name):
    meta = _manifest(name)
    assert mc.io.sha256_file(REPO_WEIGHTS / f"{name}.npz") == meta["sha256"]
    model = getattr(mc.models, name)(pretrained=True)
    assert model.labels == meta["labels"] and len(model.labels) == 10
    assert model.preprocess.to_dict() == meta["preprocessing"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_accuracy_on_fixed_subset_matches_manifest(name):
    meta = _manifest(name)
    x, y = _test_set(name)
    model = getattr(mc.models, name)(pretrained=True)
    n = int(meta["accuracy"]["subset"].split()[2])
    acc = mc.training.evaluate(model, model.preprocess.preprocess(x[:n]), y[:n])
    assert abs(acc - meta["accuracy"]["subset_value"]) <= 0.005, (acc, meta["accuracy"])


def test_cifar_net_meets_its_target_on_the_whole_test_set():
    """>= 80% of the 10,000 CIFAR-10 test images, re-measured here (about 10 s)."""
    meta = _manifest("cifar_net")
    assert meta["accuracy"]["value"] >= 0.80, meta["accuracy"]
    x, y = _test_set("cifar_net")
    model = mc.models.cifar_net(pretrained=True)
    acc = mc.training.evaluate(model, model.preprocess.preprocess(x), y)
    assert len(y) == 10000 and acc >= 0.80
    assert abs(acc - meta["accuracy"]["value"]) <= 0.0005, (acc, meta["accuracy"])


def test_fashion_net_meets_its_target():
    meta = _manifest("fashion_net")
    assert meta["accuracy"]["value"] >= 0.92, meta["accuracy"]
    assert "minicnn train fashion_net" in meta["provenance"]["command"]


def test_shipped_files_are_small():
    total = sum(p.stat().st_size for p in REPO_WEIGHTS.glob("*") if p.is_file())
    assert total < 8 * 2 ** 20, f"weights/ holds {total / 2**20:.1f} MB"


def test_corrupted_weights_are_refused(tmp_path):
    meta = _manifest("fashion_net")
    src = REPO_WEIGHTS / "fashion_net.npz"
    bad = tmp_path / "fashion_net.npz"
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    (tmp_path / "fashion_net.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="sha256"):
        mc.io.load_npz(bad, expected_arch="fashion_net")


def test_cifar_net_manifest_says_how_it_was_trained():
    """The manifest holds the command, recipe and per-epoch history of every training
    cycle: a run started with --init keeps the starting file's record in started_from."""
    meta = _manifest("cifar_net")
    prov = meta["provenance"]
    assert "minicnn train cifar_net" in prov["command"]
    assert meta["accuracy"]["value"] == prov["history"][-1]["test_acc"]
    seconds = 0.0
    while prov is not None:
        assert "minicnn train cifar_net" in prov["command"]
        assert len(prov["history"]) == prov["recipe"]["epochs"]
        assert [h["epoch"] for h in prov["history"]] == list(range(1, len(prov["history"]) + 1))
        seconds += sum(h["seconds"] for h in prov["history"])
        start = prov.get("started_from")
        if start is not None:
            assert "--init " + start["file"] in prov["command"]
            assert start["accuracy"] == start["history"][-1]["test_acc"]
            assert len(start["sha256"]) == 64
        prov = start
    if "train_seconds_all_cycles" in meta["provenance"]:
        assert abs(meta["provenance"]["train_seconds_all_cycles"] - seconds) <= 1


@pytest.mark.parametrize("name", sorted(SHIPPED) + ["segnet", "segnet_transposed", "unet"])
def test_manifests_hold_no_folder_of_the_machine_that_made_them(name):
    text = json.dumps(_manifest(name))
    for marker in ("/root", "/home/", "/tmp/", "/work/", "C:\\\\", "/Users/"):
        assert marker not in text, (name, marker)


def test_a_non_editable_install_finds_the_shipped_weights(tmp_path, monkeypatch):
    """pip install . copies weights/ to <prefix>/share/minicnn/weights (setup.py data_files);
    with no repository beside the package, load_shipped finds them there."""
    from minicnn.models import pretrained, registry
    _manifest("fashion_net")
    installed = tmp_path / "share" / "minicnn" / "weights"
    installed.mkdir(parents=True)
    for suffix in (".npz", ".json"):
        (installed / f"fashion_net{suffix}").write_bytes(
            (REPO_WEIGHTS / f"fashion_net{suffix}").read_bytes())
    monkeypatch.setattr(pretrained, "REPO_WEIGHTS", tmp_path / "no-repo" / "weights")
    monkeypatch.setattr(pretrained, "INSTALLED_WEIGHTS", installed)
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    assert registry.find_shipped("fashion_net") == installed / "fashion_net.npz"
    model = mc.models.fashion_net(pretrained=True)
    assert model.weights_path == str(installed / "fashion_net.npz")
    monkeypatch.setattr(pretrained, "INSTALLED_WEIGHTS", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="minicnn train fashion_net"):
        mc.models.fashion_net(pretrained=True)


def test_setup_installs_every_shipped_file(monkeypatch):
    """Every file under weights/ is in setup.py's data_files (what pip install . copies):
    setup.py runs with setuptools.setup replaced by a recorder of its arguments."""
    import setuptools
    root = REPO_WEIGHTS.parent
    seen = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(kw))
    monkeypatch.chdir(root)
    exec(compile((root / "setup.py").read_text(), "setup.py", "exec"), {"__name__": "__main__"})
    listed = {os.path.join(folder.replace("share/minicnn/", ""), os.path.basename(f))
              for folder, files in seen["data_files"] for f in files}
    on_disk = {str(p.relative_to(root)) for p in REPO_WEIGHTS.rglob("*") if p.is_file()}
    assert on_disk and on_disk == listed, on_disk ^ listed
