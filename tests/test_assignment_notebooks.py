"""Homework notebooks (``minicnn assignment make OUT --parts ... --notebook``): one valid
notebook per part beside the package and tests, executed by a real kernel in the homework
folder. Fresh, every cell runs and the notebook's score is 0 of the part's tests; with the
reference bodies put back into the same folder, the same notebook scores all of them and
draws its figure. The full set (every part, solution copy) is the slow test.
"""
import re
import shutil

import pytest

from minicnn import cli
from minicnn.homework import notebooks
from minicnn.homework.assignment import PACKAGE, PARTS, make, read_manifest

from tests.test_notebooks import execute, kernel_env  # noqa: F401  (a fixture)

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat)")


def test_every_part_has_a_figure_and_every_gradient_check_a_part():
    """No part is left without its 'see it work' cell; no check names a part that is gone."""
    assert set(notebooks.FIGURES) == set(PARTS)
    assert set(notebooks.GRADCHECKS) <= set(PARTS)


def test_make_notebook_writes_one_valid_notebook_per_part_and_what_it_draws_with(tmp_path, capsys):
    """The CLI flag writes <part>.ipynb per part (valid nbformat 4, no outputs), each naming
    the files and functions to write and its test file; the weights and samples its figure
    uses are copied so the folder is self-contained; the README points to the notebooks."""
    out = tmp_path / "hw"
    assert cli.main(["assignment", "make", str(out), "--parts", "saliency,conv2d",
                     "--notebook"]) == 0
    assert "jupyter lab" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["conv2d.ipynb", "saliency.ipynb"]
    for name in ("conv2d", "saliency"):
        nb = nbformat.read(str(out / f"{name}.ipynb"), as_version=4)
        nbformat.validate(nb)
        assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
        text = "\n".join(c.source for c in nb.cells)
        for rel, funcs in PARTS[name].regions:
            assert f"minicnn/{rel}" in text and all(f in text for f in funcs)
        assert f"tests/{PARTS[name].test_file}" in text
        assert f"check(HOMEWORK, parts=[{name!r}])" in text
    nb = nbformat.read(str(out / "conv2d.ipynb"), as_version=4)
    assert any("gradcheck.check" in c.source for c in nb.cells)
    assert (out / "weights" / "fashion_net.npz").is_file()
    assert len(list((out / "weights" / "samples").glob("fashion_*.png"))) == 10
    assert "conv2d.ipynb" in (out / "README.md").read_text(encoding="utf-8")
    # without the flag, no notebooks (the homework as before)
    plain = tmp_path / "plain"
    make(plain, ["saliency"])
    assert not list(plain.glob("*.ipynb")) and not (plain / "weights").exists()


def test_a_technique_that_needs_a_part_says_so_when_both_are_given(tmp_path):
    """guided_backprop's tests run the saliency and relu_rules code: its notebook says
    to do those first, naming their notebooks."""
    nb = notebooks.part_notebook(PARTS["guided_backprop"], ["saliency", "guided_backprop"])
    intro = nb["cells"][0]["source"]
    assert "saliency" in intro and "`saliency.ipynb`" in intro and "relu_rules" not in intro


def _outputs(nb):
    """All text a notebook printed, and its cells that raised."""
    text, errors = [], []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                text.append(o.text)
            elif o.output_type == "error":
                errors.append(f"{o.ename}: {o.evalue}")
    return "".join(text), errors


def _score(text):
    found = re.findall(r"^score: (\d+) / (\d+)$", text, flags=re.M)
    assert len(found) == 1, text[-2000:]
    return tuple(map(int, found[0]))


def _figures(nb):
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def _run(folder, part):
    nb = nbformat.read(str(folder / f"{part}.ipynb"), as_version=4)
    return execute(nb, folder, timeout=900)     # its setup cell checks which minicnn it got


def test_homework_notebook_scores_zero_fresh_and_full_when_filled(tmp_path, kernel_env):
    """Fresh: every cell runs, the gradient check and the figure say the body is not written
    yet, the score is 0 of the part's tests. The reference bodies copied into the same folder:
    the same notebook scores every test, the gradient check passes, the figure is drawn."""
    part = "gram_matrix"
    out = tmp_path / "hw"
    make(out, [part], notebook=True)
    total = read_manifest(out)["counts"][part]
    assert total >= 5

    text, errors = _outputs(_run(out, part))
    assert errors == []
    assert _score(text) == (0, total)
    assert "not written yet: TODO: gram_matrix" in text

    for rel, _ in PARTS[part].regions:                          # fill in the reference bodies
        shutil.copyfile(PACKAGE / rel, out / "minicnn" / rel)
    nb = _run(out, part)
    text, errors = _outputs(nb)
    assert errors == []
    assert _score(text) == (total, total)
    assert "not written yet" not in text
    assert "gradcheck (elementwise) passed" in text
    assert _figures(nb) == 1


@pytest.mark.slow
@pytest.mark.parametrize("part", list(PARTS))
def test_every_solution_notebook_scores_full_and_draws(tmp_path_factory, kernel_env, part):
    """The answer key with notebooks: each part's notebook runs, scores all its tests, and
    draws its figure (every figure and gradient-check cell works with the reference code)."""
    out = tmp_path_factory.getbasetemp() / "solution-all"
    if not (out / "assignment.json").exists():
        make(out, "all", solution=True, notebook=True)
    nb = _run(out, part)
    text, errors = _outputs(nb)
    assert errors == []
    total = read_manifest(out)["counts"][part]
    assert _score(text) == (total, total)
    assert "not written yet" not in text
    assert _figures(nb) >= 1
