"""Bad input gets a clear error and nothing is lost.

Each test feeds one bad input (an unknown op name, an empty batch, a NaN pixel, a
decompression bomb, a nonsensical training option, Ctrl-C...) and checks that the
error names the argument, file or key and what was received, that the command ends
in one line and a non-zero exit (never a traceback), and that no existing file changed.
"""
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import cli, training
from minicnn.training import loop, recipes
from minicnn.bench import opcheck
from minicnn.models import pretrained, registry
from minicnn.techniques.common import NonFiniteInputError

ROOT = Path(__file__).resolve().parents[1]


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def shipped_unchanged():
    """The repository's weights/ must be byte-for-byte the same after the test."""
    before = _hashes(ROOT / "weights")
    yield
    assert _hashes(ROOT / "weights") == before


def _one_clear_line(err, *words):
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("minicnn ")]
    assert lines, err
    for w in words:
        assert w in err, (w, err)


# ------------------------------------------------------------------ 9. gradcheck --only
def test_gradcheck_unknown_op_is_an_error_listing_the_valid_ones(capsys):
    assert cli.main(["gradcheck", "--only", "conv3d"]) == 2
    cap = capsys.readouterr()
    _one_clear_line(cap.err, "'conv3d'", "conv2d", "max_pool2d", "valid names")
    assert "0 passed" not in cap.out
    with pytest.raises(ValueError, match="'conv3d'.*conv_transpose2d"):
        opcheck.run_all(names=["conv2d", "conv3d"])
    with pytest.raises(ValueError, match="valid names"):
        opcheck.run_all(names=[])


# ------------------------------------------------------------------ 10. empty batches
def _tiny_rgb_net():
    return mc.nn.Sequential(mc.nn.Conv2d(3, 4, 3, padding=1), mc.nn.ReLU(), mc.nn.Flatten(),
                            mc.nn.Linear(4 * 6 * 6, 5))


def test_empty_batch_is_a_clear_error_in_conv_model_and_saliency():
    x = np.zeros((0, 3, 6, 6), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    for call in (lambda: mc.ops.conv2d(x, w, padding=1),
                 lambda: mc.ops.conv_transpose2d(x, np.ones((3, 2, 3, 3), np.float32))):
        with pytest.raises(ValueError, match=r"x is an empty batch \(N = 0, shape \(0, 3, 6, 6"):
            call()
    with pytest.raises(ValueError, match=r"empty batch(.|\n)*layer Conv2d '0'"):
        _tiny_rgb_net()(mc.tensor(x))
    with pytest.raises(ValueError, match=r"empty batch \(N = 0"):
        mc.techniques.saliency(_tiny_rgb_net(), x, 0)


# ------------------------------------------------------------------ 11. non-finite inputs
@pytest.mark.parametrize("technique", ["saliency", "grad_cam", "occlusion"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_image_is_an_error_naming_the_first_bad_pixel(technique, bad):
    model = mc.models.fashion_net(pretrained=False)
    x = np.random.default_rng(0).normal(size=(1, 1, 28, 28)).astype(np.float32)
    x[0, 0, 5, 7] = bad
    before = x.copy()
    call = {"saliency": lambda: mc.techniques.saliency(model, x, 3),
            "grad_cam": lambda: mc.techniques.grad_cam(model, x, 3),
            "occlusion": lambda: mc.techniques.occlusion(model, x, 3, size=8, stride=8)}[technique]
    with pytest.raises(NonFiniteInputError, match=r"not finite.*1 value.*index \(0, 0, 5, 7\)"):
        call()
    assert isinstance(NonFiniteInputError("x"), ValueError)
    np.testing.assert_array_equal(x, before)          # the caller's array is untouched


def test_raw_pixels_and_channels_last_images_are_refused_with_what_to_do():
    model = _tiny_rgb_net()
    pixels = np.random.default_rng(0).integers(0, 256, (1, 3, 6, 6), dtype=np.uint8)
    with pytest.raises(TypeError, match="uint8.*preprocess"):
        mc.techniques.saliency(model, pixels, 0)
    photo = np.random.default_rng(0).random((6, 6, 3)).astype(np.float32)   # (H, W, C)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*\(6, 6, 3\).*channels come"):
        mc.techniques.saliency(model, photo, 0)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*\(2, 6, 6, 3\)"):
        mc.techniques.grad_cam(model, np.zeros((2, 6, 6, 3), np.float32), 0, layer="0")
    grey_model = mc.models.fashion_net(pretrained=False)
    for rgb in (np.zeros((28, 28, 3), np.float32), np.zeros((1, 3, 28, 28), np.float32)):
        with pytest.raises(ValueError, match=r"expects 1 input channels.*RGB image for a greyscale"):
            mc.techniques.saliency(grey_model, rgb, 0)


# ------------------------------------------------------------------ should-fix: op arguments
def test_numpy_int_stride_works_and_a_float_stride_names_the_argument():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 3, 7, 7)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    want = mc.ops.conv2d(x, w, stride=2, padding=1).data
    got = mc.ops.conv2d(x, w, stride=np.int64(2), padding=(np.int32(1), 1), groups=np.int64(1))
    np.testing.assert_array_equal(got.data, want)
    with pytest.raises(TypeError, match=r"conv2d.*stride must be an int or a pair of ints, got 2\."):
        mc.ops.conv2d(x, w, stride=2.0)
    with pytest.raises(TypeError, match="padding must be an int"):
        mc.ops.conv2d(x, w, padding=True)
    with pytest.raises(ValueError, match=r"kernel 3×3.*larger than the padded input 2×2"):
        mc.ops.conv2d(x[:, :, :2, :2], w)


def test_layer_sizes_are_checked_where_the_layer_is_built():
    """Not NumPy's 'negative dimensions are not allowed': the layer, argument and value."""
    with pytest.raises(ValueError, match=r"Conv2d: out_channels must be a positive int, got -4"):
        mc.nn.Conv2d(3, -4, 3)
    with pytest.raises(ValueError, match=r"Linear: out_features must be a positive int, got -2"):
        mc.nn.Linear(3, -2)
    with pytest.raises(TypeError, match=r"BatchNorm2d: num_features must be an int, got 2\.5"):
        mc.nn.BatchNorm2d(2.5)
    layer = mc.nn.Conv2d(np.int64(3), np.int64(4), np.int64(3), stride=np.int64(2))
    assert layer.weight.shape == (4, 3, 3, 3) and layer.stride == (2, 2)
    assert type(layer.in_channels) is int


# ------------------------------------------------------------------ 12. huge images
def _png_header_only(path, width, height):
    """A valid PNG of the given size whose pixel data is a few bytes: what a decompression
    bomb looks like to the header reader (decoding it would fail, and must not be tried)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("size", [(20000, 20000), (9000, 9000), (1, 30000), (30000, 2)])
def test_huge_or_thin_image_is_refused_before_decoding(tmp_path, size):
    path = _png_header_only(tmp_path / "bomb.png", *size)
    with pytest.raises(ValueError, match="bomb.png") as err:
        mc.images.load_image(path)
    assert "before decoding" in str(err.value) or "longer than wide" in str(err.value)


def test_demo_with_a_bomb_image_reports_it_and_exits_non_zero(tmp_path, capsys):
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    out = tmp_path / "g"
    code = cli.main(["demo", "--quick", "--only", "filters", "--image", str(bomb),
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2                                  # a bad --image is a usage error
    _one_clear_line(err, "bomb.png", "unreadable")


def test_demo_whose_figures_fail_exits_non_zero_and_names_them(tmp_path, monkeypatch, capsys):
    from minicnn import gallery

    def every_figure_fails(out, **kwargs):
        figs = [{"key": "map", "status": "failed", "reason": "MemoryError: out of memory"}]
        return gallery.GalleryResult(Path(out), [
            {"name": "saliency", "title": "", "status": "ok", "reason": "", "figures": figs,
             "seconds": 0.0},
            {"name": "grad_cam", "title": "", "status": "failed", "reason": "MemoryError",
             "figures": [], "seconds": 0.0}], [], [], 0.0)
    monkeypatch.setattr(gallery, "build_gallery", every_figure_fails)
    assert cli.main(["demo", "--out", str(tmp_path / "g")]) == 1
    _one_clear_line(capsys.readouterr().err, "saliency/map", "grad_cam", "2 figure(s)")


# ------------------------------------------------------------------ training (13-15, Ctrl-C)
@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_train_with_no_epochs_is_a_clear_error(epochs, tiny_training, tmp_path, capsys,
                                               shipped_unchanged):
    assert cli.main(["train", "fashion_net", "--epochs", epochs, "--out", str(tmp_path / "o")]) == 2
    _one_clear_line(capsys.readouterr().err, "epochs must be a positive int", epochs)
    assert tiny_training.calls == 0 and not (tmp_path / "o" / "fashion_net.npz").exists()
    assert cli.main(["train", "segnet", "--epochs", epochs, "--out", str(tmp_path / "o")]) == 2
    _one_clear_line(capsys.readouterr().err, "epochs must be a positive int")


@pytest.mark.parametrize("lr", ["inf", "nan", "0", "-1"])
def test_train_with_a_nonsense_learning_rate_is_refused_before_training(lr, tiny_training,
                                                                        tmp_path, capsys):
    assert cli.main(["train", "fashion_net", "--lr", lr, "--out", str(tmp_path / "o")]) == 2
    _one_clear_line(capsys.readouterr().err, "lr must be a finite number > 0")
    assert tiny_training.calls == 0


def test_diverging_training_stops_and_writes_nothing(tiny_training, tmp_path, capsys,
                                                     shipped_unchanged):
    out = tmp_path / "o"
    out.mkdir()
    (out / "fashion_net.npz").write_bytes(b"an earlier result")
    before = _hashes(out)
    assert cli.main(["train", "fashion_net", "--lr", "1e6", "--out", str(out)]) == 2
    _one_clear_line(capsys.readouterr().err, "diverged", "lower the learning rate")
    assert _hashes(out) == before
    assert cli.main(["train", "fashion_net", "--epochs", "1", "--out", str(out)]) == 1
    _one_clear_line(capsys.readouterr().err, "cannot be scored", "fashion_net.candidate.npz")
    assert _hashes(out)["fashion_net.npz"] == before["fashion_net.npz"]   # a file we cannot score
    with pytest.raises(training.TrainingDiverged, match="weight arrays hold NaN"):
        recipes.save_result(str(out / "x.npz"), {"w": np.array([1.0, np.nan])}, {})
    assert not (out / "x.npz").exists()


def test_train_data_path_that_does_not_exist_is_an_error(tiny_training, tmp_path, capsys):
    missing = tmp_path / "nope"
    assert cli.main(["train", "fashion_net", "--data", str(missing),
                     "--out", str(tmp_path / "o")]) == 2
    _one_clear_line(capsys.readouterr().err, f"--data {missing}", "no such file")
    assert tiny_training.calls == 0       # never fell back to the standard locations


def test_train_out_that_is_a_file_fails_before_the_first_step(tiny_training, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("keep me")
    assert cli.main(["train", "fashion_net", "--out", str(blocker)]) == 2
    _one_clear_line(capsys.readouterr().err, f"--out {blocker}", "is a file")
    assert blocker.read_text() == "keep me" and tiny_training.calls == 0


def test_training_by_default_writes_to_the_cache_and_never_touches_shipped_weights(
        tiny_training, home, capsys, shipped_unchanged):
    shipped = registry.find_shipped("fashion_net")
    assert cli.main(["train", "fashion_net", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    result = home / "trained" / "fashion_net.npz"
    assert result.is_file() and str(result) in out
    assert registry.find_shipped("fashion_net") == shipped     # the demo still loads that
    assert f"loads {shipped}" in out


def test_out_into_the_shipped_folder_needs_the_flag_and_a_worse_run_never_replaces(
        tiny_training, tmp_path, monkeypatch, capsys, shipped_unchanged):
    shipped_src = ROOT / "weights" / "fashion_net.npz"
    if not shipped_src.is_file():
        pytest.skip("no shipped fashion_net.npz in weights/")
    fake_repo = tmp_path / "repo-weights"          # a copy: the real file is never at risk
    fake_repo.mkdir()
    for suffix in (".npz", ".json"):
        source = shipped_src.with_suffix(suffix)
        (fake_repo / f"fashion_net{suffix}").write_bytes(source.read_bytes())
    monkeypatch.setattr(pretrained, "REPO_WEIGHTS", fake_repo)
    tiny = recipes._dataset                        # the test labels are what the shipped net
    shipped_net = mc.models.fashion_net(pretrained=True)   # answers: on them it scores 1.0

    def test_set_the_shipped_net_gets_right(name, root):
        xtr, ytr, xte, _, labels, on = tiny(name, root)
        yte = loop.predict(shipped_net, shipped_net.preprocess.preprocess(xte)).argmax(1)
        return xtr, ytr, xte, yte, labels, on
    monkeypatch.setattr(recipes, "_dataset", test_set_the_shipped_net_gets_right)
    before = _hashes(fake_repo)
    assert cli.main(["train", "fashion_net", "--epochs", "1", "--out", str(fake_repo)]) == 2
    _one_clear_line(capsys.readouterr().err, "--replace-shipped", str(fake_repo))
    assert tiny_training.calls == 0
    assert cli.main(["train", "fashion_net", "--epochs", "1", "--replace-shipped"]) == 1
    _one_clear_line(capsys.readouterr().err, f"kept {fake_repo / 'fashion_net.npz'}: it scores "
                    "1.0000 on a tiny test set", "on the same images", "fashion_net.candidate.npz")
    after = _hashes(fake_repo)
    assert {k: after[k] for k in before} == before
    assert (fake_repo / "fashion_net.candidate.npz").is_file()     # nothing lost either way


def test_a_better_run_replaces_the_file_it_was_asked_to(tiny_training, tmp_path):
    out = tmp_path / "o"
    path, _ = recipes.train_recipe("fashion_net", out_dir=out, epochs=1, progress=False)
    state, meta = mc.io.load_npz(path)
    test_labels = recipes._dataset("fashion_mnist", None)[3]
    absent = min(set(range(10)) - set(test_labels.tolist()))
    last = [k for k, v in state.items() if k.endswith(".weight") and v.ndim == 2][-1]
    state[last] = np.zeros_like(state[last])   # always answers a class absent from the test
    state[last[:-len("weight")] + "bias"] = np.where(np.arange(10) == absent, 10.0, -10.0
                                                     ).astype(np.float32)
    mc.io.save_npz(path, state, {k: v for k, v in meta.items() if k != "sha256"})  # set: 0.0
    old = _hashes(out)["fashion_net.npz"]
    recipes.train_recipe("fashion_net", out_dir=out, epochs=1, seed=1, progress=False)
    assert _hashes(out)["fashion_net.npz"] != old


@pytest.mark.parametrize("how", ["raised", "signal"])
def test_ctrl_c_saves_a_checkpoint_and_resume_ends_where_one_run_would(
        how, tiny_training, tmp_path, monkeypatch, capsys):
    """"raised": a KeyboardInterrupt inside the 2nd step of epoch 2 (the step is dropped);
    "signal": a real SIGINT inside the 1st step (the step finishes, then the run stops)."""
    import os
    import signal
    straight = tmp_path / "straight"
    assert cli.main(["train", "fashion_net", "--out", str(straight)]) == 0
    capsys.readouterr()

    real, calls = loop.as_backend, {"n": 0}

    def interrupt(a, backend):    # calls: epoch 1 = 2 steps × (x, y) + 1 evaluation batch
        calls["n"] += 1
        if how == "raised" and calls["n"] == 8:          # x of epoch 2's 2nd step
            raise KeyboardInterrupt
        if how == "signal" and calls["n"] == 6:          # x of epoch 2's 1st step
            os.kill(os.getpid(), signal.SIGINT)
        return real(a, backend)
    monkeypatch.setattr(loop, "as_backend", interrupt)
    cut = tmp_path / "cut"
    assert cli.main(["train", "fashion_net", "--out", str(cut)]) == 130
    err = capsys.readouterr().err
    _one_clear_line(err, "interrupted in epoch 2/2 after step 1/2", "saved the checkpoint",
                    "--resume")
    assert not (cut / "fashion_net.npz").exists()
    monkeypatch.setattr(loop, "as_backend", real)
    assert cli.main(["train", "fashion_net", "--out", str(cut), "--resume"]) == 0
    a, ma = mc.io.load_npz(straight / "fashion_net.npz")
    b, mb = mc.io.load_npz(cut / "fashion_net.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert [h["loss"] for h in ma["provenance"]["history"]] == \
        [h["loss"] for h in mb["provenance"]["history"]]


def test_a_checkpoint_is_written_inside_long_epochs(tiny_training, tmp_path, monkeypatch):
    saved = []
    real = loop._save_checkpoint

    def spy(path, model, optimizer, epoch, rng, history, partial=None):
        saved.append(None if partial is None else partial["step"])
        return real(path, model, optimizer, epoch, rng, history, partial)
    monkeypatch.setattr(loop, "_save_checkpoint", spy)
    model = mc.models.fashion_net(pretrained=False)
    x = np.random.default_rng(0).normal(size=(48, 1, 28, 28)).astype(np.float32)
    y = np.arange(48) % 10
    ckpt = str(tmp_path / "c.npz")
    training.fit(model, (x, y), epochs=1, batch_size=16, checkpoint=ckpt, progress=False,
                 checkpoint_every=0.0)
    assert saved == [1, 2, None]                  # after steps 1 and 2 of 3, then the epoch
    saved.clear()
    training.fit(model, (x, y), epochs=1, batch_size=16, checkpoint=ckpt, progress=False)
    assert saved == [None]                        # the default: every 5 minutes
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        training.fit(model, (x, y), epochs=0)
    with pytest.raises(ValueError, match="at least one image"):
        training.fit(model, (x[:0], y[:0]), epochs=1)


# ------------------------------------------------------------------ 16. weights import / list
def test_weights_import_says_where_it_wrote_and_that_pretrained_uses_it(home, tmp_path, capsys,
                                                                       shipped_unchanged):
    src = registry.find_shipped("fashion_net")
    if src is None:
        pytest.skip("no shipped fashion_net.npz")
    assert cli.main(["weights", "import", str(src), "--arch", "fashion_net"]) == 0
    out = capsys.readouterr().out
    target = home / "weights" / "fashion_net.npz"
    assert f"wrote {target}" in out and "will load it" in out
    assert mc.models.fashion_net(pretrained=True).weights_path == str(target)
    assert cli.main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert str(target) in listing and f"hidden by the file above: {src}" in listing
    elsewhere = tmp_path / "elsewhere"
    assert cli.main(["weights", "import", str(src), "--arch", "fashion_net",
                     "--out", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    assert "will NOT load it" in out and str(target) in out and str(elsewhere) in out


def test_weights_list_names_every_shipped_file(home, capsys):
    assert cli.main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    for name in registry.SHIPPED:
        if (ROOT / "weights" / f"{name}.npz").is_file():
            assert str(ROOT / "weights" / f"{name}.npz") in listing, name
        assert f"\n{name} " in listing, name


# ------------------------------------------------------------------ the CLI never shows a traceback
def test_internal_error_is_one_line_naming_the_log_file(home, monkeypatch, capsys):
    def broken(**kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(opcheck, "run_all", broken)
    assert cli.main(["gradcheck"]) == 3
    err = capsys.readouterr().err
    _one_clear_line(err, "internal error ZeroDivisionError: a bug")
    log = Path(err.split("the traceback is in ")[1].strip())
    assert log.is_file() and log.parent == home / "logs"
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()


def test_ctrl_c_outside_training_is_one_line(monkeypatch, capsys):
    def interrupted(**kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(opcheck, "run_all", interrupted)
    assert cli.main(["gradcheck"]) == 130
    _one_clear_line(capsys.readouterr().err, "interrupted")


def test_import_with_a_missing_file_or_unknown_arch_is_one_line(home, tmp_path, capsys):
    assert cli.main(["weights", "import", str(tmp_path / "x.npz"), "--arch", "fashion_net"]) == 2
    _one_clear_line(capsys.readouterr().err, "x.npz")
    src = ROOT / "weights" / "fashion_net.npz"
    assert cli.main(["weights", "import", str(src), "--arch", "lenet"]) == 2
    _one_clear_line(capsys.readouterr().err, "'lenet'", "fashion_net")
    assert not (home / "weights").exists() or not any((home / "weights").iterdir())


def test_ctrl_c_in_segmentation_training_resumes_inside_the_epoch(tmp_path):
    from minicnn.models.segmentation import segnet
    from minicnn.training.segmentation import fit_segmentation
    from tests.test_segmentation import TINY, dataset
    data = dataset(size=16, length=8, scale=(0.5, 0.5))

    class CutAtFourthBatch:                  # Ctrl-C while the 4th batch is being made
        calls = 0

        def __len__(self):
            return len(data)

        def batch(self, idx):
            CutAtFourthBatch.calls += 1
            if CutAtFourthBatch.calls == 4:
                raise KeyboardInterrupt
            return data.batch(idx)
    kw = dict(epochs=3, batch_size=4, lr=5e-3, seed=0, progress=False)
    whole = segnet(widths=TINY, num_classes=4)
    fit_segmentation(whole, data, **kw)
    ckpt = str(tmp_path / "seg.ckpt.npz")
    part = segnet(widths=TINY, num_classes=4)
    with pytest.raises(training.TrainingInterrupted, match="epoch 2/3 after step 1/2") as stop:
        fit_segmentation(part, CutAtFourthBatch(), checkpoint=ckpt, **kw)
    assert stop.value.checkpoint == ckpt
    part = segnet(widths=TINY, num_classes=4)
    history = fit_segmentation(part, data, checkpoint=ckpt, resume=True, **kw)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for (k, a), b in zip(whole.state_dict().items(), part.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_an_empty_layer_name_is_not_the_whole_model():
    """"" names the model itself in get_submodule; as a technique's layer it is an error
    that lists the valid names."""
    from minicnn.nn import UnknownLayerError
    from minicnn.techniques.common import check_layer
    model = mc.models.fashion_net()
    with pytest.raises(UnknownLayerError, match=r"got ''.*features\.0"):
        check_layer(model, "")
    assert check_layer(model, "features.3") == "features.3"
