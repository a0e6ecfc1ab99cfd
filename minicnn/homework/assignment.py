"""Homework from minicnn's own sources: blank the bodies a student should write, ship the tests.

    minicnn assignment make hw --parts conv2d,max_pool2d,saliency    # writes the folder hw/
    minicnn assignment check hw                                      # score table per part
    minicnn assignment make hw --parts conv2d --notebook             # + hw/conv2d.ipynb

In the sources, the body a student writes sits between two comment lines of its own,
``BEGIN`` and ``END`` below, indented like the statements they enclose (after the
docstring of ``conv2d_naive``, around the loops; around the body of ``MaxPool2d.forward``).
``make`` copies the package and replaces each chosen region (markers included) by
``raise NotImplementedError("TODO: <part>: <first docstring line>")`` at the same
indentation, so the package still imports; every other line is left as it is. ``PARTS``
says which regions form a part (by the qualified name of the function around them) and
which test file goes with it (``homework/assignment_tests/test_<part>.py``: gradient checks and
the properties that make the op or technique what it is, on hand-sized inputs).
"""
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .notebooks import notebook_name, write_notebooks

__all__ = ["PARTS", "Part", "Region", "find_regions", "blank_regions", "verify_markers",
           "make", "check", "format_table"]

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
PACKAGE = Path(__file__).resolve().parents[1]           # the minicnn package folder
TEMPLATES = Path(__file__).resolve().parent / "assignment_tests"
MANIFEST = "assignment.json"


@dataclass(frozen=True)
class Part:
    """One exercise: regions (package-relative file, qualified function names), the lesson."""
    name: str
    regions: tuple
    lesson: str
    needs: tuple = ()          # parts whose code this part's tests also run: do those first

    @property
    def test_file(self):
        return f"test_{self.name}.py"


PARTS = {p.name: p for p in [
    Part("conv2d", (("ops/im2col.py", ("im2col", "col2im")),
                    ("ops/conv.py", ("conv2d_naive", "conv2d_im2col"))),
         "the loop version first, then im2col (every receptive field one column) so the layer "
         "is one matmul y = W·cols; its adjoint col2im gives the backward dx = col2im(Wᵀ·g), "
         "and conv2d runs on both"),
    Part("conv_transpose2d", (("ops/conv.py", ("ConvTranspose2d.forward",
                                               "ConvTranspose2d.backward",
                                               "conv_transpose2d_naive")),),
         "every input pixel stamps its weighted kernel onto the output; the forward is "
         "conv2d's input gradient and the backward conv2d's forward (the adjoint)",
         needs=("conv2d",)),
    Part("max_pool2d", (("ops/pool.py", ("MaxPool2d.forward", "MaxPool2d.backward",
                                         "max_pool2d_naive")),),
         "the max of each window and where it was (a flat index h·W + w); backward sends "
         "the gradient to that argmax only", needs=("max_unpool2d",)),
    Part("max_unpool2d", (("ops/pool.py", ("_gather", "_scatter_add", "MaxUnpool2d.forward",
                                           "MaxUnpool2d.backward")),),
         "gather at flat indices and its adjoint, the scatter-add: unpooling puts each value "
         "back where max-pooling found it"),
    Part("relu_rules", (("autograd.py", ("_standard", "_deconvnet", "_guided")),),
         "what flows back through a ReLU: the true derivative, the deconvnet's rectified "
         "signal, guided backprop's both masks"),
    Part("gram_matrix", (("ops/image.py", ("GramMatrix.forward", "GramMatrix.backward",
                                           "gram_matrix_naive")),),
         "G = F Fᵀ / (C·H·W) of the (C, H·W) feature matrix and its gradient (g + gᵀ) F / (C·H·W)"),
    Part("saliency", (("techniques/gradients.py", ("input_gradient", "saliency")),),
         "one backward pass from a class score to the image; saliency = max over channels "
         "of |∂y_k/∂x| (Simonyan et al. 2014)"),
    Part("guided_backprop", (("techniques/gradients.py", ("guided_backprop",)),),
         "the same backward pass with the guided ReLU rule (Springenberg et al. 2015)",
         needs=("saliency", "relu_rules")),
    Part("grad_cam", (("techniques/gradcam.py", ("grad_cam",)),),
         "weigh a layer's maps by their average gradient, sum, ReLU, upsample "
         "(Selvaraju et al. 2017)"),
    Part("class_visualization", (("techniques/class_vis.py", ("class_visualization",)),),
         "gradient ascent on the image: maximize S_c(I) − λ‖I‖² (Simonyan et al. 2014), "
         "with the regularizers of Yosinski et al. 2015 as switches"),
    Part("style_loss", (("techniques/style.py", ("style_loss.fn",)),),
         "Σ_l w_l ‖G_l(I) − G_l(S)‖²: match feature statistics, not layout (Gatys et al. 2016)",
         needs=("gram_matrix",)),
    Part("fgsm", (("techniques/adversarial.py", ("fgsm",)),),
         "one step of size ε along sign(∇ₓJ): the loss of the true class rises (the target's "
         "falls), every pixel moves by exactly ε (Goodfellow et al. 2015)"),
]}


# ----------------------------------------------------------------- regions

@dataclass(frozen=True)
class Region:
    """Lines begin..end (0-based, the marker lines) inside function ``name``."""
    name: str
    begin: int
    end: int
    indent: str
    hint: str


def _functions(tree):
    """(qualified name, node, docstring hints from the innermost outwards) for every def."""
    out = []

    def walk(node, prefix, docs):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                chain = [ast.get_docstring(child)] + docs
                if not isinstance(child, ast.ClassDef):
                    out.append((name, child, chain))
                walk(child, name + ".", chain)
            else:
                walk(child, prefix, docs)
    walk(tree, "", [])
    return out


def _indent(line):
    return line[:len(line) - len(line.lstrip())]


def find_regions(text, path="<source>"):
    """The marked regions of a source text, in order; unbalanced markers are a ValueError."""
    lines = text.split("\n")                # exactly the lines ast numbers (not splitlines)
    pairs, start = [], None
    for i, line in enumerate(lines):
        mark = line.strip()
        if mark == BEGIN:
            if start is not None:
                raise ValueError(f"{path}:{i + 1}: {BEGIN} inside the region opened at line "
                                 f"{start + 1}")
            start = i
        elif mark == END:
            if start is None:
                raise ValueError(f"{path}:{i + 1}: {END} without a {BEGIN} before it")
            if _indent(line) != _indent(lines[start]):
                raise ValueError(f"{path}:{i + 1}: {END} is not indented like the {BEGIN} "
                                 f"of line {start + 1}")
            if not any(s.strip() and not s.strip().startswith("#") for s in lines[start + 1:i]):
                raise ValueError(f"{path}:{start + 1}: empty solution region")
            pairs.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"{path}:{start + 1}: {BEGIN} is never closed by {END}")
    functions = _functions(ast.parse(text, filename=str(path)))
    regions = []
    for b, e in pairs:
        around = [(n, node, docs) for n, node, docs in functions
                  if node.lineno <= b + 1 <= node.end_lineno]
        if not around:
            raise ValueError(f"{path}:{b + 1}: a solution region must be inside a function")
        name, node, docs = max(around, key=lambda f: f[1].lineno)       # the innermost
        doc = next((d for d in docs if d), "")
        regions.append(Region(name, b, e, _indent(lines[b]), _hint(doc)))
    return regions


def _hint(doc):
    """The docstring's first paragraph (and the next one when it ends with ':'), one line."""
    paragraphs = [" ".join(p.split()) for p in doc.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return "see the docstring"
    hint = paragraphs[0]
    if hint.endswith(":") and len(paragraphs) > 1:
        hint += " " + paragraphs[1]
    return hint if len(hint) <= 240 else hint[:237] + "..."


def blank_regions(text, todo, path="<source>"):
    """``text`` with the regions named in ``todo`` ({qualified name: part}) replaced by a raise.

    Every name must match exactly one region; the result must compile.
    """
    regions = find_regions(text, path)
    by_name = {}
    for r in regions:
        by_name.setdefault(r.name, []).append(r)
    for name in todo:
        if len(by_name.get(name, [])) != 1:
            found = ", ".join(sorted(by_name)) or "none"
            raise ValueError(f"{path}: expected one solution region in {name!r}, found "
                             f"{len(by_name.get(name, []))} (regions in this file: {found})")
    lines = text.split("\n")
    for r in sorted((by_name[n][0] for n in todo), key=lambda r: -r.begin):
        message = f"TODO: {todo[r.name]}: {r.hint} [{r.name}]"
        lines[r.begin:r.end + 1] = [f"{r.indent}raise NotImplementedError({message!r})"]
    out = "\n".join(lines)
    compile(out, str(path), "exec")
    return out


def verify_markers(package=PACKAGE):
    """Problems (strings; empty when all is well): unbalanced markers in any module, registered
    regions that are missing, marked regions that no part names, missing test templates."""
    problems, found = [], {}
    for path in sorted(Path(package).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if BEGIN not in text and END not in text:
            continue
        rel = path.relative_to(package).as_posix()
        try:
            found[rel] = {r.name for r in find_regions(text, rel)}
        except (ValueError, SyntaxError) as e:
            problems.append(str(e))
    claimed = set()
    for part in PARTS.values():
        for rel, names in part.regions:
            for name in names:
                claimed.add((rel, name))
                if name not in found.get(rel, set()):
                    problems.append(f"part {part.name}: no solution region in {name!r} of {rel}")
        if not (TEMPLATES / part.test_file).is_file():
            problems.append(f"part {part.name}: test template homework/assignment_tests/{part.test_file} "
                            "is missing")
    for rel, names in found.items():
        for name in sorted(names):
            if (rel, name) not in claimed:
                problems.append(f"{rel}: the solution region in {name!r} belongs to no part")
    return problems


# -------------------------------------------------------------------- make

def parse_parts(parts):
    """A list (or 'a,b,c') of part names, checked, in the registry's order."""
    names = [p.strip() for p in (parts.split(",") if isinstance(parts, str) else parts)]
    names = [n for n in names if n]
    if names == ["all"]:
        return list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        what = f"unknown part(s) {', '.join(unknown)}" if unknown else "no parts given"
        raise ValueError(f"{what}; valid parts: {', '.join(PARTS)} (or 'all')")
    return [n for n in PARTS if n in names]


def make(out, parts, force=False, solution=False, notebook=False):
    """Write a homework folder ``out``: the package with the chosen parts blanked (kept with
    ``solution=True``), tests/test_<part>.py, a README and the assignment.json manifest;
    with ``notebook=True`` also one Jupyter notebook per part (homework/notebooks.py).

    ``out`` must not exist or be empty, unless ``force``: then the files an earlier make wrote
    (listed in its manifest) are replaced and the user's other files are left alone; a user's
    file where a generated one goes is an error. Built in a temporary folder next to ``out``,
    then moved in file by file.
    """
    names = parse_parts(parts)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"assignment make: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"assignment make: {out} exists and is not empty; choose a new "
                              "folder or pass --force to replace the generated files")
    problems = verify_markers()
    if problems:
        raise RuntimeError("assignment make: the solution markers are broken:\n  "
                           + "\n  ".join(problems))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _build(tmp, names, solution)
        if notebook:
            write_notebooks(tmp, [PARTS[n] for n in names])
            with open(tmp / "README.md", "a", encoding="utf-8") as f:
                f.write(_notebook_readme(names))
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _generated_files(out):
    """The files an earlier ``make`` wrote into ``out`` (its manifest's list), or none."""
    try:
        files = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def _install(tmp, out):
    """Move the tree built in ``tmp`` into ``out`` file by file. The manifest lists every
    file written, so a later ``--force`` replaces exactly those (and removes those no
    longer generated); a file of the user's at a path the generator writes is an error
    naming it, raised before anything changes -- never overwritten, never deleted."""
    files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
    meta = json.loads((tmp / MANIFEST).read_text(encoding="utf-8"))
    (tmp / MANIFEST).write_text(json.dumps({**meta, "files": files}, indent=2) + "\n",
                                encoding="utf-8")
    earlier = _generated_files(out)

    def blocked(rel):                      # a user's file or folder where ours would go
        target = out / rel
        if target.is_symlink() or target.is_dir() or (target.exists() and rel not in earlier):
            return True
        return any((out / parent).is_file() or (out / parent).is_symlink()
                   for parent in map(str, Path(rel).parents) if parent != ".")
    conflicts = [rel for rel in files if blocked(rel)]
    if conflicts:
        raise FileExistsError(
            f"assignment make: {out} holds {len(conflicts)} file(s) that an earlier make did "
            f"not write where this one writes (e.g. {out / conflicts[0]}); nothing was "
            f"changed -- move them away, or choose a new folder")
    out.mkdir(exist_ok=True)
    for rel in files:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, out / rel)
    for rel in sorted(earlier - set(files)):          # generated before, not any more
        target = out / rel
        if target.is_file() and not target.is_symlink() and target.resolve().is_relative_to(out.resolve()):
            target.unlink()
    for folder in {(out / rel).parent for rel in files}:   # bytecode of the replaced modules
        cache = folder / "__pycache__"
        if cache.is_dir() and not cache.is_symlink() and all(p.suffix == ".pyc" for p in cache.iterdir()):
            shutil.rmtree(cache)


def _build(root, names, solution):
    shutil.copytree(PACKAGE, root / "minicnn", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "assignment_tests"))
    if not solution:
        todo = {}                                   # file -> {qualified name: part}
        for name in names:
            for rel, funcs in PARTS[name].regions:
                todo.setdefault(rel, {}).update({f: name for f in funcs})
        for rel, regions in todo.items():
            path = root / "minicnn" / rel
            path.write_text(blank_regions(path.read_text(encoding="utf-8"), regions, rel),
                            encoding="utf-8")
    (root / "tests").mkdir()
    for name in names:
        shutil.copyfile(TEMPLATES / PARTS[name].test_file, root / "tests" / PARTS[name].test_file)
    shutil.copyfile(TEMPLATES / "conftest.py", root / "conftest.py")
    (root / "pytest.ini").write_text(
        "[pytest]\ntestpaths = tests\naddopts = -p no:cacheprovider\n", encoding="utf-8")
    (root / "README.md").write_text(_readme(names, solution), encoding="utf-8")
    (root / MANIFEST).write_text(json.dumps(
        {"minicnn_assignment": 1, "parts": names, "solution": bool(solution),
         "tests": {n: f"tests/{PARTS[n].test_file}" for n in names},
         "counts": _count_tests(root, names)}, indent=2) + "\n", encoding="utf-8")


def _readme(names, solution):
    rows = []
    for n in names:
        part = PARTS[n]
        where = "; ".join(f"`minicnn/{rel}`: " + ", ".join(f"`{f}`" for f in funcs)
                          for rel, funcs in part.regions)
        first = [d for d in part.needs if d in names]
        rows.append(f"| `{n}` | {where} | {part.lesson.replace('|', chr(92) + '|')}"
                    + (f" (do {', '.join(first)} first)" if first else "") + " |")
    state = ("This is the **solution** copy: every body is filled in and every test passes."
             if solution else
             "Each function to write raises `NotImplementedError(\"TODO: ...\")`; its docstring "
             "(shapes, formula, paper) stays. Everything else in `minicnn/` works as shipped.")
    return f"""# minicnn homework

A copy of minicnn, a from-scratch NumPy engine for understanding convolutional networks.
{state}

| part | write the body of | the idea |
|---|---|---|
{chr(10).join(rows)}

## How to work
- Read the docstring of the function and the module around it; the helpers next to it are
  yours to use. Keep the signatures and what `ctx` must hold for the backward.
- Write the loop version first where there is one (`*_naive`): it is what you compare
  the fast version with.
- Check one part: `python -m pytest tests/test_<part>.py -q` (e.g. `tests/test_{names[0]}.py`).
- Score every part: `python -m minicnn assignment check .` (a table of passed / total).
- The tests are gradient checks (`minicnn.gradcheck`: backward against centred finite
  differences) and the properties that make each op or technique what it is, on inputs
  small enough to verify by hand. Do not edit them.
"""


def _notebook_readme(names):
    files = ", ".join(f"`{notebook_name(n)}`" for n in names)
    return f"""
## Notebooks
One notebook per part ({files}): the idea, the source of what you write, a gradient check,
the part's tests and your score, and a figure of the result. Open them with
`jupyter lab` in this folder (`pip install jupyterlab`); they import the `minicnn` of this
folder and reload it on every run, so edit the file, save, and run the cells again.
"""


def _count_tests(root, names):
    """{part: number of tests}, collected now (while the package surely imports)."""
    proc = _pytest(root, ["--collect-only", "-q"] + [f"tests/{PARTS[n].test_file}" for n in names],
                   timeout=300)
    ids = (proc.stdout if proc else "").splitlines()
    return {n: sum(i.startswith(f"tests/{PARTS[n].test_file}::") for i in ids) for n in names}


def _pytest(root, args, timeout):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + ([env["PYTHONPATH"]]
                                                       if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, "-m", "pytest", "--rootdir", str(root), "-c",
           str(Path(root) / "pytest.ini")] + args
    try:
        return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


# ------------------------------------------------------------------- check

def read_manifest(out):
    """The manifest of an assignment folder; a ValueError when ``out`` is not one."""
    path = Path(out) / MANIFEST
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        parts = [str(p) for p in meta["parts"]]
        tests = {p: meta["tests"][p] for p in parts}
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{out} is not a minicnn assignment (no readable {MANIFEST}); "
                         "make one with: minicnn assignment make OUT --parts ...") from None
    return dict(meta, parts=parts, tests=tests)


def check(out, timeout=900, parts=None):
    """Run each part's tests in ``out`` (or only ``parts``, a list of names); one row per
    part: dict(part, passed, total, note)."""
    out = Path(out).resolve()
    meta = read_manifest(out)
    missing = sorted(set(parts or ()) - set(meta["parts"]))
    if missing:
        raise ValueError(f"{out} has no part(s) {', '.join(missing)}; its parts: "
                         f"{', '.join(meta['parts'])}")
    rows = []
    for part in meta["parts"] if parts is None else [p for p in meta["parts"] if p in parts]:
        expected = int((meta.get("counts") or {}).get(part) or 0)
        with tempfile.TemporaryDirectory() as tmp:
            xml = Path(tmp) / "report.xml"
            proc = _pytest(out, ["-q", f"--junitxml={xml}", meta["tests"][part]], timeout)
            row = _score(xml if proc is not None and xml.exists() else None, expected)
        row["part"] = part
        if proc is None:
            row["note"] = f"stopped after {timeout} s"
        rows.append(row)
    return rows


def _score(xml, expected):
    """passed / total from a JUnit report; a file that did not even import scores 0 of all."""
    if xml is None:
        return dict(passed=0, total=expected, note="no report")
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests, failures, errors, skipped = (int(suite.get(k, 0))
                                        for k in ("tests", "failures", "errors", "skipped"))
    passed, total = tests - failures - errors - skipped, tests - skipped
    if errors and tests <= 1 and expected > 1:      # a collection error: nothing ran
        return dict(passed=0, total=expected, note="the tests could not be collected "
                                                   "(import error?)")
    return dict(passed=passed, total=total, note=f"{skipped} skipped" if skipped else "")


def format_table(rows):
    """The score table: one line per part and the sum."""
    width = max([len("part")] + [len(r["part"]) for r in rows])
    lines = [f"{'part':<{width}}  passed  total  note", "-" * (width + 22)]
    for r in rows:
        lines.append(f"{r['part']:<{width}}  {r['passed']:>6}  {r['total']:>5}  {r['note']}")
    passed, total = sum(r["passed"] for r in rows), sum(r["total"] for r in rows)
    lines += ["-" * (width + 22), f"{'all':<{width}}  {passed:>6}  {total:>5}"]
    return "\n".join(lines)
