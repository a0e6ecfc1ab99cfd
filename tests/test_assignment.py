"""The homework generator: solution markers, ``make`` and ``check``.

A freshly made assignment fails its tests (the bodies are gone) and passes them once the
reference bodies are put back; the markers are balanced and every registered part's
regions exist; the blanked package still compiles with the docstrings kept.
"""
import ast
import shutil

import pytest

from minicnn.homework import assignment
from minicnn import cli
from minicnn.homework.assignment import PACKAGE, PARTS, blank_regions, find_regions, make, verify_markers

B, E = assignment.BEGIN, assignment.END


def test_markers_are_balanced_and_every_part_region_exists():
    assert verify_markers() == []


def _docstrings(text):
    return {n: ast.get_docstring(node) for n, node, _ in assignment._functions(ast.parse(text))}


@pytest.mark.parametrize("rel", sorted({rel for p in PARTS.values() for rel, _ in p.regions}))
def test_blanking_every_region_of_a_file_keeps_it_valid_with_its_docstrings(rel):
    todo = {name: part.name for part in PARTS.values() for r, names in part.regions
            if r == rel for name in names}
    original = (PACKAGE / rel).read_text(encoding="utf-8")
    blanked = blank_regions(original, todo, rel)              # compiles, or raises
    assert B not in blanked and E not in blanked              # every region here has a part
    for name, part in todo.items():
        assert f"TODO: {part}: " in blanked and f"[{name}]" in blanked
    assert _docstrings(blanked) == _docstrings(original)      # no docstring lost
    n_removed = sum(r.end - r.begin for r in find_regions(original, rel) if r.name in todo)
    assert len(original.splitlines()) - len(blanked.splitlines()) == n_removed


SOURCE = f'''def f(x):
    """Double x."""
    y = 1
    {B}
    y = 2 * x
    return y
    {E}


class Op:
    """An op: y = x + 1."""
    def forward(ctx, x):
        {B}
        return x + 1
        {E}
'''


def test_blank_regions_replaces_exactly_the_marked_lines():
    out = blank_regions(SOURCE, {"f": "p", "Op.forward": "q"})
    assert out == '''def f(x):
    """Double x."""
    y = 1
    raise NotImplementedError('TODO: p: Double x. [f]')


class Op:
    """An op: y = x + 1."""
    def forward(ctx, x):
        raise NotImplementedError('TODO: q: An op: y = x + 1. [Op.forward]')
'''
    with pytest.raises(ValueError, match="expected one solution region in 'g'"):
        blank_regions(SOURCE, {"g": "p"})


@pytest.mark.parametrize("text,message", [
    (f"def f():\n    {B}\n    return 1\n", "never closed"),
    (f"def f():\n    return 1\n    {E}\n", "without a"),
    (f"def f():\n    {B}\n    {B}\n    return 1\n    {E}\n", "inside the region"),
    (f"def f():\n    {B}\n    return 1\n{E}\n", "not indented like"),
    (f"{B}\nx = 1\n{E}\n", "inside a function"),
    (f"def f():\n    {B}\n    # nothing\n    {E}\n    return 1\n", "empty"),
])
def test_unbalanced_markers_are_errors_with_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        find_regions(text, "mod.py")


def test_unknown_part_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ValueError) as err:
        make(tmp_path / "hw", ["conv2d", "convolution"])
    assert "convolution" in str(err.value) and all(p in str(err.value) for p in PARTS)
    assert not (tmp_path / "hw").exists()
    assert cli.main(["assignment", "make", str(tmp_path / "hw"), "--parts", "nope"]) == 2
    assert "valid parts: conv2d" in capsys.readouterr().err


def test_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        make(tmp_path, ["saliency"])
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_check_needs_an_assignment_folder(tmp_path, capsys):
    assert cli.main(["assignment", "check", str(tmp_path)]) == 2
    assert "not a minicnn assignment" in capsys.readouterr().err


def test_fresh_assignment_fails_and_the_reference_bodies_pass(tmp_path, capsys):
    out = tmp_path / "hw"
    assert cli.main(["assignment", "make", str(out), "--parts", "saliency,conv2d"]) == 0
    blanked = {rel for name in ("conv2d", "saliency") for rel, _ in PARTS[name].regions}
    # everything but the blanked files is the package as shipped
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if "__pycache__" in rel or rel.startswith("homework/assignment_tests/"):
            continue
        copy = (out / "minicnn" / rel).read_text(encoding="utf-8")
        if rel in blanked:
            gone = {n for name in ("conv2d", "saliency") for r, names in PARTS[name].regions
                    if r == rel for n in names}
            left = {r.name for r in find_regions(path.read_text(encoding="utf-8"))} - gone
            assert {r.name for r in find_regions(copy)} == left  # e.g. guided_backprop stays
            assert all(f"[{n}]" in copy for n in gone)
        else:
            assert copy == path.read_text(encoding="utf-8"), rel
    assert sorted(p.name for p in (out / "tests").iterdir()) == ["test_conv2d.py",
                                                                   "test_saliency.py"]
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "`conv2d`" in readme and "`saliency`" in readme and "python -m pytest" in readme

    rows = {r["part"]: r for r in assignment.check(out)}
    assert list(rows) == ["conv2d", "saliency"]                 # registry order
    for r in rows.values():
        assert r["passed"] == 0 and r["total"] >= 5, r

    for rel in blanked:                                          # the reference bodies back
        shutil.copyfile(PACKAGE / rel, out / "minicnn" / rel)
    capsys.readouterr()
    assert cli.main(["assignment", "check", str(out)]) == 0
    table = capsys.readouterr().out
    for r in rows.values():
        assert f"{r['part']}" in table and f"{r['total']:>6}  {r['total']:>5}" in table, table

    # --force rebuilds the generated files and leaves the student's other files alone
    (out / "notes.txt").write_text("mine")
    make(out, ["relu_rules"], force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "tests").iterdir()) == ["test_relu_rules.py"]


@pytest.mark.slow
def test_every_part_alone_fails_all_its_tests_and_the_solution_passes(tmp_path):
    for name in PARTS:
        make(tmp_path / name, [name])
        (row,) = assignment.check(tmp_path / name)
        assert row["passed"] == 0 and row["total"] > 0, row
    make(tmp_path / "key", "all", solution=True)
    for row in assignment.check(tmp_path / "key"):
        assert row["passed"] == row["total"] > 0, row
