"""Homework as Jupyter notebooks: one per part, beside the package and tests that
``minicnn assignment make OUT --parts ... --notebook`` writes.

    hw/conv2d.ipynb     the idea, where to write, the function's source (docstring and the
                        TODO), a gradient check, the part's tests with the score, a figure

The notebook imports the ``minicnn`` of its own folder (the one the student edits) and
reloads it on every run (``%autoreload 2``), so: edit the file, run the cells again. Every
cell runs without error while the body is still missing: it says what is not written yet.
The notebook files are plain JSON (nbformat 4), written without Jupyter installed.
"""
import importlib
import json
import shutil
from pathlib import Path

__all__ = ["FIGURES", "GRADCHECKS", "notebook_name", "part_notebook", "write_notebooks",
           "shipped_files"]


def notebook_name(part):
    return f"{part}.ipynb"


# The gradient check of each op part (runs after the setup cell; rng, np, mc are there).
GRADCHECKS = {
    "conv2d": """\
from minicnn.ops.conv import conv2d, conv2d_im2col, conv2d_naive
x = rng.standard_normal((2, 3, 7, 7))                    # (N, C, H, W)
w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
loops = conv2d_naive(x, w, b, stride=2, padding=1)
matmul = conv2d_im2col(x, w, b, stride=2, padding=1)
print("loops vs im2col, max |difference|:", np.abs(loops - matmul).max())
print(mc.gradcheck.check(lambda x, w, b: conv2d(x, w, b, stride=2, padding=1), [x, w, b]))""",
    "conv_transpose2d": """\
from minicnn.ops.conv import conv2d, conv_transpose2d, conv_transpose2d_naive
x = rng.standard_normal((2, 4, 4, 5))                    # (N, C_in, H, W)
w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3)   # w: (C_in, C_out, kh, kw)
y = conv_transpose2d(mc.tensor(x), mc.tensor(w), mc.tensor(b), stride=2, padding=1).data
print("Function vs loops, max |difference|:",
      np.abs(y - conv_transpose2d_naive(x, w, b, stride=2, padding=1)).max())
# the adjoint: <conv_T(x), z> = <x, conv(z)> (no bias)
z = rng.standard_normal(y.shape)
lhs = (conv_transpose2d(mc.tensor(x), mc.tensor(w), stride=2, padding=1).data * z).sum()
rhs = (x * conv2d(mc.tensor(z), mc.tensor(w), stride=2, padding=1).data).sum()
print(f"<conv_T(x), z> = {lhs:.6f}   <x, conv(z)> = {rhs:.6f}")
print(mc.gradcheck.check(lambda x, w, b: conv_transpose2d(x, w, b, stride=2, padding=1),
                         [x, w, b]))""",
    "max_pool2d": """\
from minicnn.ops.pool import max_pool2d, max_pool2d_naive
x = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) / 10.0     # distinct values: no ties
out, idx = max_pool2d(mc.tensor(x), 2, 2, return_indices=True)
ref, ref_idx = max_pool2d_naive(x, 2, 2)
print("Function vs loops: values", np.abs(out.data - ref).max(), "indices equal:",
      bool((np.asarray(idx) == ref_idx).all()))
print(mc.gradcheck.check(lambda x: max_pool2d(x, 2, 2), [x]))""",
    "max_unpool2d": """\
from minicnn.ops.pool import max_pool2d, max_unpool2d
x = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) / 10.0     # distinct values: no ties
y, idx = max_pool2d(mc.tensor(x), 2, 2, return_indices=True)
up = max_unpool2d(y, idx, output_size=(6, 6)).data
print("unpooled values sit where the maxima were:", bool((up[up != 0] == x[up != 0]).all()),
      f"({int((up != 0).sum())} of {up.size} places)")
print(mc.gradcheck.check(lambda y: max_unpool2d(y, idx, output_size=(6, 6)), [y.data]))""",
    "relu_rules": """\
from minicnn import ops
x, w1, w2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((5, 2))
print(mc.gradcheck.check(lambda x, w1, w2: ops.relu(ops.relu(x @ w1) @ w2), [x, w1, w2]))""",
    "gram_matrix": """\
from minicnn.ops.image import gram_matrix, gram_matrix_naive
x = rng.standard_normal((2, 3, 4, 5))
print("Function vs loops, max |difference|:",
      np.abs(gram_matrix(mc.tensor(x)).data - gram_matrix_naive(x)).max())
print(mc.gradcheck.check(gram_matrix, [x]))""",
    "style_loss": """\
from minicnn.ops.image import gram_matrix
from minicnn.techniques.style import style_loss
a0, b0 = rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((1, 2, 3, 3))
grams = {"conv1": gram_matrix(mc.tensor(a0)).data, "conv2": gram_matrix(mc.tensor(b0)).data}
obj = style_loss(grams, [0.7, 0.3])
at_style = obj({"conv1": mc.tensor(a0), "conv2": mc.tensor(b0)})
print("loss at the style itself (0):", float(at_style.data))
a, b = rng.standard_normal(a0.shape), rng.standard_normal(b0.shape)
print(mc.gradcheck.check(lambda a, b: obj({"conv1": a, "conv2": b}), [a, b]))""",
}

# The figure of each part (after the setup cell: fashion_samples, model, show, plt, np, mc).
FIGURES = {
    "conv2d": """\
from minicnn.ops.conv import conv2d_im2col
image = fashion_samples()[0][0] / 255.0                  # a T-shirt, 28×28 in [0, 1]
sobel = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
w = np.stack([sobel, sobel.T])[:, None]                  # (2, 1, 3, 3): two edge filters
y = conv2d_im2col(image[None, None], w, padding=1)[0]    # (2, 28, 28)
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, m, title in zip(axes, [image, y[0], y[1]], ["image", "vertical edges", "horizontal edges"]):
    ax.imshow(m, cmap="gray"); ax.set_title(title); ax.axis("off")
show(fig)""",
    "conv_transpose2d": """\
from minicnn.ops.conv import conv_transpose2d
image = fashion_samples()[0][0] / 255.0                  # 28×28
k = np.array([0.25, 0.75, 0.75, 0.25])
kernel = np.outer(k, k)[None, None]                      # (1, 1, 4, 4): bilinear up-sampling
big = conv_transpose2d(mc.tensor(image[None, None]), mc.tensor(kernel), stride=2,
                       padding=1).data[0, 0]
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, m, title in zip(axes, [image, big], [f"image {image.shape}", f"stride 2: {big.shape}"]):
    ax.imshow(m, cmap="gray"); ax.set_title(title); ax.axis("off")
show(fig)""",
    "max_pool2d": """\
from minicnn.ops.pool import max_pool2d
image = fashion_samples()[9][0] / 255.0                  # an ankle boot
p1 = max_pool2d(mc.tensor(image[None, None]), 2, 2).data
p2 = max_pool2d(mc.tensor(p1), 2, 2).data
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, m in zip(axes, [image, p1[0, 0], p2[0, 0]]):
    ax.imshow(m, cmap="gray"); ax.set_title(f"{m.shape}"); ax.axis("off")
show(fig)""",
    "max_unpool2d": """\
from minicnn.ops.pool import max_pool2d, max_unpool2d
image = fashion_samples()[9][0] / 255.0
pooled, idx = max_pool2d(mc.tensor(image[None, None]), 2, 2, return_indices=True)
back = max_unpool2d(pooled, idx, output_size=image.shape).data[0, 0]
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, m, title in zip(axes, [image, pooled.data[0, 0], back], ["image", "pooled", "unpooled"]):
    ax.imshow(m, cmap="gray"); ax.set_title(title); ax.axis("off")
show(fig)""",
    "relu_rules": """\
from minicnn.autograd import RELU_RULES
v = np.linspace(-1, 1, 101)
G, X = np.meshgrid(v, v)                                 # upstream gradient g, forward input x
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
for ax, name in zip(axes, ["standard", "deconvnet", "guided"]):
    im = ax.imshow(RELU_RULES[name](G, X > 0), cmap="RdBu_r", vmin=-1, vmax=1, origin="lower",
                   extent=(-1, 1, -1, 1))
    ax.set_title(name); ax.set_xlabel("upstream g"); ax.set_ylabel("forward input x")
fig.colorbar(im, ax=axes, shrink=0.8, label="gradient passed down")
show(fig)""",
    "gram_matrix": """\
from minicnn.ops.image import gram_matrix
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
for ax, k in zip(axes, [0, 1, 9]):
    image, label = fashion_samples()[k]
    with mc.capture(model, ["features.3"]) as acts, mc.no_grad():
        model(mc.tensor(model.preprocess.preprocess(image)))
    G = gram_matrix(acts["features.3"]).data[0]          # (16, 16)
    ax.imshow(G, cmap="viridis"); ax.set_title(f"Gram of features.3: {CLASSES[label]}")
show(fig)""",
    "saliency": """\
from minicnn.techniques.gradients import saliency
samples = fashion_samples()[:4]
fig, axes = plt.subplots(2, 4, figsize=(8, 4))
for col, (image, label) in enumerate(samples):
    S = saliency(model, model.preprocess.preprocess(image)[0], label)     # (28, 28)
    axes[0, col].imshow(image, cmap="gray"); axes[0, col].set_title(CLASSES[label])
    axes[1, col].imshow(S, cmap="hot"); axes[1, col].set_title("saliency")
for ax in axes.flat:
    ax.axis("off")
show(fig)""",
    "guided_backprop": """\
from minicnn.plot.attribution import gradient_image
from minicnn.techniques.gradients import guided_backprop, input_gradient
image, label = fashion_samples()[8]                      # a bag
x = model.preprocess.preprocess(image)[0]
maps = [input_gradient(model, x, label), guided_backprop(model, x, label)]
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].imshow(image, cmap="gray"); axes[0].set_title(CLASSES[label])
for ax, m, title in zip(axes[1:], maps, ["gradient", "guided backprop"]):
    ax.imshow(gradient_image(m), cmap="gray", vmin=0, vmax=1); ax.set_title(title)
for ax in axes:
    ax.axis("off")
show(fig)""",
    "grad_cam": """\
from minicnn.plot.attribution import heatmap_overlay
from minicnn.techniques.gradcam import grad_cam
samples = fashion_samples()[:4]
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, (image, label) in zip(axes, samples):
    cam = grad_cam(model, model.preprocess.preprocess(image)[0], label)  # (28, 28)
    heatmap_overlay(ax, image, cam, title=CLASSES[label])
show(fig)""",
    "class_visualization": """\
from minicnn.techniques.class_vis import class_visualization
fig, axes = plt.subplots(1, 3, figsize=(7, 2.6))
for ax, c in zip(axes, [1, 7, 9]):
    img, history = class_visualization(model, c, steps=100, lr=0.02, optimizer="sgd", l2=0.3,
                                       tv=1.0, background="black", jitter=2, init="random")
    ax.imshow(model.preprocess.deprocess(img[0]), cmap="gray"); ax.axis("off")
    first, last = history["objective"][0], history["objective"][-1]
    ax.set_title(f"{CLASSES[c]}\\nobjective {first:.1f} → {last:.1f}")
show(fig)""",
    "style_loss": """\
from minicnn.techniques.style import texture_synthesis
style = model.preprocess.preprocess(fashion_samples()[8][0])        # a bag as the "style"
texture, history = texture_synthesis(model, style, ["features.1", "features.3", "features.6"],
                                     steps=30)
print(f"style loss {history['style'][0]:.3g} → {history['style'][-1]:.3g}")
fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
for ax, m, title in zip(axes, [style[0], texture[0]], ["style", "texture"]):
    ax.imshow(model.preprocess.deprocess(m), cmap="gray"); ax.set_title(title); ax.axis("off")
show(fig)""",
    "fgsm": """\
from minicnn.techniques.adversarial import fgsm
from minicnn.training import predict
samples = fashion_samples()[:4]
x = model.preprocess.preprocess(np.stack([image for image, _ in samples]))
y = [label for _, label in samples]
adv = fgsm(model, x, y, eps=0.1)
before, after = predict(model, x).argmax(axis=1), predict(model, adv).argmax(axis=1)
fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
for col in range(4):
    axes[0, col].imshow(model.preprocess.deprocess(x[col]), cmap="gray")
    axes[0, col].set_title(CLASSES[before[col]])
    axes[1, col].imshow(model.preprocess.deprocess(adv[col]), cmap="gray")
    axes[1, col].set_title(f"ε = 0.1 → {CLASSES[after[col]]}")
for ax in axes.flat:
    ax.axis("off")
show(fig)""",
}

SETUP = """\
%load_ext autoreload
%autoreload 2
%matplotlib inline
import os
import sys

HOMEWORK = os.path.abspath("")       # this notebook's folder: the homework
if sys.path[:1] != [HOMEWORK]:
    sys.path.insert(0, HOMEWORK)     # import the minicnn you edit here, not an installed one

import numpy as np
from IPython.display import display

import minicnn as mc
from minicnn.data import FASHION_MNIST_CLASSES as CLASSES
from minicnn.data.samples import fashion_samples
from minicnn.homework.assignment import check, format_table
from minicnn.plot.core import plt

here = os.path.realpath(os.path.join(HOMEWORK, "minicnn"))
assert os.path.dirname(os.path.realpath(mc.__file__)) == here, \\
    f"minicnn comes from {mc.__file__}, not from this homework: restart the kernel"
rng = np.random.default_rng(0)
model = mc.models.fashion_net(pretrained=True).eval()   # the small trained net shipped in weights/


def show(fig):
    \"\"\"Draw a figure in the notebook, then free it.\"\"\"
    display(fig)
    plt.close(fig)"""


def _guarded(code):
    """``code`` inside try/except NotImplementedError: a missing body is reported, not raised."""
    body = "\n".join("    " + line if line else "" for line in code.split("\n"))
    return (f"try:\n{body}\nexcept NotImplementedError as todo:\n"
            f"    print(\"not written yet:\", todo)")


def _where(part):
    """[(file, qualified name, Python expression of the object to print the source of)]."""
    out = []
    for rel, names in part.regions:
        module = "minicnn." + rel[:-3].replace("/", ".")
        mod = importlib.import_module(module)
        for name in names:
            top, *rest = name.split(".")
            # a method is printed itself; a function nested in a function, with its parent
            obj = name if rest and isinstance(getattr(mod, top), type) else top
            out.append((rel, name, module, obj))
    return out


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text):
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": text}


def part_notebook(part, names=()):
    """The notebook of ``part`` (an ``assignment.Part``) as an nbformat-4 dict. ``names``:
    every part of this homework (to say which of the parts this one needs are in it)."""
    name = part.name
    where = _where(part)
    files = {}
    for rel, qual, _, _ in where:
        files.setdefault(rel, []).append(f"`{qual}`")
    places = "\n".join(f"- [`minicnn/{rel}`](minicnn/{rel}): {', '.join(q)}"
                       for rel, q in files.items())
    first = [d for d in part.needs if d in names]
    needs = (f"\n\nThis part's tests also run the code of **{', '.join(first)}**: do "
             f"{'that part' if len(first) == 1 else 'those parts'} first "
             f"({', '.join(f'`{notebook_name(d)}`' for d in first)}).") if first else ""
    imports = {}
    for _, _, module, obj in where:
        imports.setdefault(module, []).append(obj.split(".")[0])
    source_cell = "import inspect\n" + "\n".join(
        f"from {m} import {', '.join(dict.fromkeys(objs))}" for m, objs in imports.items()) + \
        "\n\n" + "\n".join(f"print(inspect.getsource({obj}))"
                           for obj in dict.fromkeys(o for _, _, _, o in where))
    cells = [
        _md(f"# Homework: `{name}`\n\n**The idea.** {part.lesson[:1].upper()}{part.lesson[1:]}."
            f"{needs}\n\n"
            f"**Where you write.** Each body to write raises `NotImplementedError(\"TODO: ...\")`; "
            f"its docstring (shapes, formula, paper) stays. Open the file in an editor (or in "
            f"Jupyter: File ▸ Open), write the body, save, and run this notebook's cells again — "
            f"the package is reloaded on every run.\n\n{places}\n\n"
            "Keep the signatures, and what `ctx` must hold for the backward. Every other line of "
            "the package works as shipped: use the helpers next to your function."),
        _code(SETUP),
        _md("## What to write\nThe source as it is now: the docstring says what the body must do."),
        _code(source_cell),
    ]
    if name in GRADCHECKS:
        cells += [
            _md("## Gradient check\n`mc.gradcheck.check(fn, inputs)` runs your backward and "
                "compares it with centred finite differences in float64 "
                "(∂L/∂x ≈ (L(x + h) − L(x − h)) / 2h); a relative error below 1e-6 passes."),
            _code(_guarded(GRADCHECKS[name])),
        ]
    cells += [
        _md(f"## The tests\nThe part's tests (`tests/{part.test_file}`: gradient checks and "
            "the properties that make it what it is, on inputs small enough to verify by hand), "
            "one line per failure — what you would type in a terminal in this folder."),
        _code("import subprocess\n\n"
              "command = [sys.executable, \"-m\", \"pytest\", \"-q\", \"--tb=line\", \"--color=no\",\n"
              f"           \"tests/{part.test_file}\"]\n"
              "result = subprocess.run(command, cwd=HOMEWORK, capture_output=True, text=True)\n"
              "print(\"\\n\".join(result.stdout.splitlines()[-40:]))"),
        _md("## Your score\nThe row `python -m minicnn assignment check .` gives for this part."),
        _code(f"rows = check(HOMEWORK, parts=[{name!r}])\n"
              "print(format_table(rows))\n"
              "print(f\"score: {rows[0]['passed']} / {rows[0]['total']}\")"),
        _md("## See it work\nOn the shipped `fashion_net` and its Fashion-MNIST samples."),
        _code(_guarded(FIGURES[name])),
    ]
    for i, cell in enumerate(cells):
        cell["id"] = f"{name.replace('_', '-')}-{i}"
    return {"cells": cells, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def shipped_files():
    """The files the notebooks' figures need, relative to the repository or install root:
    the fashion_net weights and its Fashion-MNIST samples (found where minicnn finds them)."""
    from ..data.samples import SAMPLES_DIR
    from ..models.pretrained import find_shipped
    npz = find_shipped("fashion_net")
    if npz is None:
        raise FileNotFoundError("assignment make --notebook: the shipped fashion_net weights "
                                "are not found (weights/fashion_net.npz of the repository)")
    files = {Path("weights") / npz.name: npz, Path("weights") / f"{npz.stem}.json":
             npz.with_suffix(".json")}
    files.update({Path("weights") / "samples" / p.name: p
                  for p in sorted(Path(SAMPLES_DIR).glob("fashion_*.png"))})
    return {rel: src for rel, src in files.items() if src.is_file()}


def write_notebooks(root, parts):
    """Write ``<part>.ipynb`` for every ``assignment.Part`` in ``parts`` into ``root``, and the
    weights and samples they draw with into ``root/weights``. Returns the notebook paths."""
    root = Path(root)
    names = [p.name for p in parts]
    for rel, src in shipped_files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
    paths = []
    for part in parts:
        path = root / notebook_name(part.name)
        path.write_text(json.dumps(part_notebook(part, names), indent=1, ensure_ascii=False)
                        + "\n", encoding="utf-8")
        paths.append(path)
    return paths
