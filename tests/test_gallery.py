"""The gallery (`minicnn demo`), the demo scripts and the README's pointers to them.

The quick gallery runs once per module (fixture ``quick``) into a temporary folder; the
checks then look at what it wrote.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minicnn.cli import main
from minicnn.gallery import SECTION_NAMES, build_gallery

ROOT = Path(__file__).resolve().parents[1]
DEMOS = sorted((ROOT / "demos").glob("[0-9][0-9]_*.py"))


def _has_photo_model():
    from minicnn.models.registry import find_weights
    try:
        find_weights("efficientnet_lite0")
        return True
    except FileNotFoundError:
        return False


# figures the quick gallery must produce, per model (a figure that may be skipped for a
# documented reason — no trained SegNet — is not listed)
SMALL = ["filters-fashion_net-first", "filters-fashion_net-deep", "filters-cifar_net-first",
         "activations-fashion_net-features.1", "activations-fashion_net-features.8",
         "top_images-fashion_net-grid", "top_images-fashion_net-patches-0",
         "top_images-fashion_net-erf", "neighbors-fashion_net-neighbours",
         "embedding-fashion_net-pca", "embedding-fashion_net-tsne",
         "embedding-fashion_net-tsne-images", "occlusion-fashion_net-0",
         "saliency-fashion_net-saliency", "deconvnet-fashion_net-panel",
         "deconvnet-fashion_net-class", "guided_backprop-fashion_net-guided",
         "grad_cam-fashion_net-panel", "class_visualization-fashion_net-classes",
         "inversion-fashion_net-layers", "deepdream-fashion_net-dream",
         "adversarial-linear", "adversarial-fashion_net-fgsm", "adversarial-fashion_net-pgd",
         "adversarial-fashion_net-one-pixel", "robustness-fashion_net-examples",
         "robustness-fashion_net-curves", "robustness-fashion_net-pgd",
         "segmentation-fashion_net-fcn"]
PHOTO = ["filters-{m}-first", "activations-{m}-_blocks.1._depthwise_relu",
         "saliency-{m}-saliency", "saliency-{m}-segmentation", "deconvnet-{m}-class",
         "guided_backprop-{m}-guided", "grad_cam-{m}-classes", "deepdream-{m}-dream",
         "style_transfer-{m}-transfer", "style_transfer-{m}-texture", "adversarial-{m}-fgsm"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery") / "out"
    result = build_gallery(out, quick=True, progress=False)
    return out, result


def _has_fashion_mnist():
    from minicnn.data import load_fashion_mnist
    try:
        load_fashion_mnist("test", download=False)
    except FileNotFoundError:
        return False
    return True


def _referenced(out):
    page = (out / "index.html").read_text(encoding="utf-8")
    return page, re.findall(r'<img src="([^"]+)"', page)


def _leftovers(out):
    """Temporary files of the atomic writes that were not renamed."""
    return [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_quick_gallery_writes_every_figure_as_a_valid_nonconstant_png(quick):
    out, result = quick
    assert result.failed() == [], f"sections or figures failed: {result.failed()}"
    expected = list(SMALL)
    if _has_photo_model():
        expected += [k.format(m="efficientnet_lite0") for k in PHOTO]
    if not _has_fashion_mnist():        # the neighbours need the test set, and say so
        expected.remove("neighbors-fashion_net-neighbours")
        assert [reason for name, reason in result.skipped() if name == "neighbors"][0] \
            .startswith("needs the Fashion-MNIST test set (to get it: minicnn data fetch "
                        "fashion-mnist")
    for key in expected:
        path = out / f"{key}.png"
        assert path.is_file(), f"missing figure {path.name}"
        with Image.open(path) as img:
            img.load()
            a = np.asarray(img.convert("RGB"))
        assert a.shape[0] > 50 and a.shape[1] > 50, f"{path.name} is only {a.shape}"
        assert a.std() > 1, f"{path.name} is a constant image"
    assert [s["name"] for s in result.sections] == list(SECTION_NAMES)
    assert not _leftovers(out)


def test_photo_figures_credit_their_photos_and_licences_in_the_caption(quick):
    if not _has_photo_model():
        pytest.skip("EfficientNet-Lite0's weights package not installed")
    out, result = quick
    # every ImageNet-model figure but the filters (weights) and the class visualizations
    # (optimized from noise) shows a sample photo
    photo = [(s["name"], f) for s in result.sections for f in s["figures"]
             if f["status"] == "ok" and "efficientnet_lite0" in f["key"]
             and s["name"] not in ("filters", "class_visualization")]
    assert photo
    for section, f in photo:
        assert "Photos: " in f["extra"] and ", CC0" in f["extra"], (section, f["key"], f["extra"])


def test_index_references_only_existing_files_and_every_figure(quick):
    out, result = quick
    page, refs = _referenced(out)
    assert refs, "index.html shows no image"
    for ref in refs:
        assert (out / ref).is_file(), f"index.html references missing {ref}"
    assert sorted(refs) == sorted(f["file"] for f in result.figures())
    for name in SECTION_NAMES:                       # every section has its heading, in order
        assert f'id="{name}"' in page
    # captions carry the technique, formula, paper, parameters and the time taken
    assert "Selvaraju et al. 2017" in page and "time:" in page and "parameters:" in page
    if not (ROOT / "weights" / "fashion_net.npz").is_file():
        assert "untrained" in page


def test_second_run_into_the_same_folder_succeeds(quick, capsys):
    out, _ = quick
    assert main(["demo", "--quick", "--only", "filters,saliency", "--out", str(out)]) == 0
    page, refs = _referenced(out)
    assert any(r.startswith("filters-") for r in refs)
    assert all((out / r).is_file() for r in refs)
    assert not _leftovers(out)


def test_unknown_section_lists_the_valid_ones_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["demo", "--only", "saliency,bogus", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "bogus" in err and "grad_cam" in err and "segmentation" in err
    assert main(["demo", "--only", "", "--out", str(out)]) != 0        # not "everything"
    assert "valid sections" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_model_lists_the_known_ones_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["demo", "--model", "lenet", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "lenet" in err and "fashion_net" in err
    assert not out.exists()


def test_unwritable_out_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "gallery"):
        assert main(["demo", "--quick", "--only", "filters", "--out", str(out)]) != 0
        err = capsys.readouterr().err
        assert "--out" in err and str(blocker) in err
    assert blocker.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_unreadable_image_is_reported_and_the_gallery_is_still_whole(tmp_path, capsys,
                                                                      monkeypatch):
    bad = tmp_path / "photo.jpg"
    bad.write_text("this is not a JPEG")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)                           # nothing may be written outside --out
    out = tmp_path / "g"
    code = main(["demo", "--quick", "--only", "filters", "--image", str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and "photo.jpg" in err and "unreadable" in err
    page, refs = _referenced(out)
    assert "photo.jpg" in page and "could not be read" in page
    assert refs and all((out / r).is_file() for r in refs)
    assert not _leftovers(out)
    assert list(cwd.iterdir()) == []


def test_python_dash_m_minicnn_demo_reaches_the_cli(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minicnn", "demo", "--only", "nope", "--out",
                        str(tmp_path / "g")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode != 0
    assert "valid sections" in r.stderr and "filters" in r.stderr


# ------------------------------------------------------------------ demos and README
def test_demo_scripts_are_short_notebooks_listed_in_their_readme():
    readme = (ROOT / "demos" / "README.md").read_text(encoding="utf-8")
    assert len(DEMOS) >= 17
    for path in DEMOS:
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 60, f"{path.name} is longer than 60 lines"
        assert text.count("# %%") >= 2, f"{path.name} has no # %% cells"
        assert f"({path.name})" in readme, f"{path.name} is not listed in demos/README.md"
        compile(text, str(path), "exec")


def test_readme_points_only_at_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && minicnn demo' in readme
    assert "python -m pytest -q" in readme
    for ref in set(re.findall(r"\b((?:demos|tests|docs|minicnn)/[\w./-]+\.(?:py|png|md))", readme)):
        assert (ROOT / ref).is_file(), f"README.md mentions {ref}, which does not exist"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q" in ci                 # the README's test command


def _demo_needs(text):
    """Why a demo cannot run here (None if it can)."""
    from minicnn.models.registry import REPO_WEIGHTS
    if "fashion_net(pretrained=True)" in text and not (REPO_WEIGHTS / "fashion_net.npz").is_file():
        return "weights/fashion_net.npz not present"
    if "cifar_net(pretrained=True)" in text and not (REPO_WEIGHTS / "cifar_net.npz").is_file():
        return "weights/cifar_net.npz not present"
    if "getattr(segmentation, name)(pretrained=True)" in text:
        missing = [n for n in ("segnet", "segnet_transposed", "unet")
                   if not (REPO_WEIGHTS / f"{n}.npz").is_file()]
        if missing:
            return f"weights/{missing[0]}.npz not present"
    if "efficientnet_lite0(pretrained=True)" in text and not _has_photo_model():
        return "EfficientNet-Lite0 weights not installed"
    if "load_fashion_mnist(" in text:
        from minicnn.data import load_fashion_mnist
        try:
            load_fashion_mnist("test", download=False)
        except (OSError, ValueError):
            return "Fashion-MNIST not installed"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("path", DEMOS, ids=[p.stem for p in DEMOS])
def test_demo_runs_offline(path, tmp_path):
    reason = _demo_needs(path.read_text(encoding="utf-8"))
    if reason:
        pytest.skip(reason)
    env = {"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    import os
    for key in ("MINICNN_HOME", "OPENBLAS_NUM_THREADS", "SYSTEMROOT"):
        if key in os.environ:
            env[key] = os.environ[key]
    r = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    pngs = list((tmp_path / "demo-output").glob("*.png"))
    assert pngs, "the demo saved no figure"


# ------------------------------------------------------------------ browser
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHECK = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(
    "error: " + (e.message || (e.target && (e.target.src || e.target.href)) || "?")), true);
const _err = console.error;
console.error = (...a) => { window.__errors.push("console: " + a.join(" ")); _err(...a); };
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const pre = document.createElement("pre");
  pre.id = "gallery-check";
  pre.textContent = "CHECK " + JSON.stringify({images: imgs.length, bad: bad,
                                               errors: window.__errors}) + " END";
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.browser
def test_gallery_loads_in_headless_chromium(tmp_path):
    import json
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = tmp_path / "g"
    build_gallery(out, only=["filters", "saliency", "grad_cam"], quick=True, progress=False)
    page = (out / "index.html").read_text(encoding="utf-8")
    (out / "check.html").write_text(page.replace("<head>", "<head>" + CHECK, 1), encoding="utf-8")
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--allow-file-access-from-files", "--enable-logging=stderr", "--v=0",
                        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
                        "--dump-dom", (out / "check.html").as_uri()],
                       capture_output=True, text=True, timeout=180)
    m = re.search(r"CHECK (.*?) END", r.stdout)
    assert m, f"the check script did not run; stderr: {r.stderr[-2000:]}"
    report = json.loads(m.group(1).replace("&quot;", '"'))
    assert report["images"] == len(re.findall(r"<img ", page)) > 0
    assert report["bad"] == [], f"images that did not load: {report['bad']}"
    assert report["errors"] == [], f"errors in the page: {report['errors']}"
    console = [line for line in r.stderr.splitlines() if "CONSOLE" in line]   # the page has no JS
    assert console == [], console


# ------------------------------------------------------------------ cifar_net's inputs
def test_cifar_net_gallery_takes_one_test_image_per_class_from_the_users_cifar10(tmp_path,
                                                                                 monkeypatch):
    """minicnn ships no CIFAR images: with --model cifar_net the gallery reads the first test
    image of each class from the user's copy of CIFAR-10; without one it skips and says where
    to put it."""
    from minicnn.data.cifar import CIFAR10_CLASSES
    from minicnn.gallery import Context, Skip
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    ctx = Context(tmp_path / "g", True, "numpy", 0, "cifar_net", ())
    with pytest.raises(Skip, match="datasets/cifar10"):
        ctx.samples()
    rng = np.random.default_rng(0)
    for k, name in enumerate(CIFAR10_CLASSES):         # a tiny image tree, two per class
        folder = tmp_path / "home" / "datasets" / "cifar10" / "test" / name
        folder.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                folder / f"{i}.png")
    ctx = Context(tmp_path / "g2", True, "numpy", 0, "cifar_net", ())
    x, pix, labels, names = ctx.samples()
    assert x.shape == (10, 3, 32, 32) and labels == list(range(10))
    assert names == list(CIFAR10_CLASSES)


# ------------------------------------------------------------------ a machine without datasets
@pytest.fixture
def no_datasets(tmp_path, monkeypatch):
    """No Fashion-MNIST or CIFAR-10 anywhere: an empty cache and no system dataset folders."""
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("MINICNN_DATASET_DIRS", "")


def test_without_the_datasets_captions_say_what_ran_and_tsne_fits_its_perplexity(tmp_path,
                                                                                  no_datasets):
    """On the shipped samples alone: t-SNE runs on its 10 points with a lowered perplexity
    (captioned), the captions count the images really used, neighbours skip saying how to get
    the test set."""
    result = build_gallery(tmp_path / "g", only=["neighbors", "embedding"], model="fashion_net",
                           quick=True, progress=False)
    sections = {s["name"]: s for s in result.sections}
    assert sections["neighbors"]["status"] == "skipped"
    assert "apt-get install dataset-fashion-mnist" in sections["neighbors"]["reason"]
    figures = {f["key"]: f for f in sections["embedding"]["figures"]}
    assert {f["status"] for f in figures.values()} == {"ok"}, figures
    tsne = figures["fashion_net-tsne"]["params"]
    assert "points=10 from the shipped samples" in tsne
    assert "perplexity=3 (lowered from 30" in tsne
    assert any("Fashion-MNIST test set" in text and "is not installed" in text
               for _, text in result.notes)
    assert ("neighbors", sections["neighbors"]["reason"]) in result.skipped()
    page = (tmp_path / "g" / "index.html").read_text()
    assert "points=10 from the shipped samples" in page and "images=1000" not in page


def test_tsne_perplexity_is_lowered_only_when_the_points_are_too_few():
    from minicnn.gallery import Skip
    from minicnn.gallery.sections.representations import tsne_perplexity
    assert tsne_perplexity(500) == (30, "")
    assert tsne_perplexity(91) == (30, "")
    value, text = tsne_perplexity(10)
    assert value == 3 and "lowered from 30" in text and "9" in text
    with pytest.raises(Skip, match="at least 3 points"):
        tsne_perplexity(2)


def test_demo_prints_skipped_sections_with_their_reasons(tmp_path, no_datasets, capsys):
    assert main(["demo", "--quick", "--only", "neighbors", "--model", "fashion_net",
                 "--out", str(tmp_path / "g")]) == 0
    err = capsys.readouterr().err
    assert "neighbors skipped: needs the Fashion-MNIST test set" in err
    assert "apt-get install dataset-fashion-mnist" in err


def test_demo_help_lists_every_section_and_model(capsys):
    from minicnn.models import MODELS
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    sections, models = text.split("sections (--only, in this order):")[1].split(
        "models (--model):")
    assert [s.strip() for s in sections.split(",")] == list(SECTION_NAMES)
    assert [m.strip() for m in models.split(",")] == sorted(MODELS)
