"""Figures for adversarial examples and robustness.

Images are in the model's preprocessed space (N, C, H, W) as the techniques return them;
``preprocess`` (``model.preprocess``) maps them back to 0–255 pixels. Differences are
shown around mid-grey: 127.5 + k·(x_adv − x) in pixel units, so an invisible change
becomes visible at k = 10.
"""
import numpy as np

from ..backend import to_numpy
from .core import plt, show_image
from .optimization import to_pixels

__all__ = ["required_eps_plot", "adversarial_panel", "top_k_bars", "adversarial_top_k_figure",
           "corruption_curves", "corruption_examples", "one_pixel_panel", "template_mixing_row",
           "shape_bias_bars", "cue_conflict_figure"]


def required_eps_plot(result, linear=None):
    """ε needed for a fixed score change vs the input dimension d (``required_eps``), log-log;
    ``linear``: the 10-D example's dict (``linear_example``), quoted in the title."""
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    d, eps = np.asarray(result["dims"]), np.asarray(result["eps"])
    ax.loglog(d, eps, "o-", label="ε = Δ / ‖w‖₁ (w ~ N(0, 1))")
    ax.axhline(1 / 255, color="gray", ls="--", lw=1, label="one grey level (1/255)")
    for name, dd in (("MNIST", 784), ("CIFAR", 3072), ("ImageNet", 150528)):
        ax.axvline(dd, color="C1", lw=0.6, alpha=0.6)
        ax.text(dd, eps.max(), name, rotation=90, fontsize=7,
                va="top", ha="right")
    ax.set_xlabel("input dimension d")
    ax.set_ylabel("per-coordinate nudge ε")
    delta = float(np.asarray(result["eps"])[0] * np.asarray(result["l1"])[0])
    title = f"nudge ε needed to move a linear score by Δ = {delta:g}"
    if linear is not None:
        title += (f"\n10-D: w·x {linear['score']:g} → {linear['adv_score']:g}, "
                  f"P {linear['prob']:.4f} → {linear['adv_prob']:.4f}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _difference(x, x_adv, preprocess, k):
    d = to_pixels(x_adv, preprocess) - to_pixels(x, preprocess)
    return np.clip(127.5 + k * d, 0, 255)


def adversarial_panel(originals, adversarials, preprocess=None, titles=None, amplify=10,
                      cell=1.7):
    """One row per image: original | adversarial | difference | ``amplify``× difference.
    titles: per row, (original title, adversarial title), e.g. predicted class and p."""
    xs, advs = np.asarray(to_numpy(originals)), np.asarray(to_numpy(adversarials))
    xs, advs = (a[None] if a.ndim == 3 else a for a in (xs, advs))
    n = len(xs)
    fig, axes = plt.subplots(n, 4, figsize=(4 * cell, n * cell + 0.2), squeeze=False)
    for i in range(n):
        t0, t1 = titles[i] if titles is not None else ("image", "adversarial")
        show_image(axes[i, 0], to_pixels(xs[i], preprocess), t0)
        show_image(axes[i, 1], to_pixels(advs[i], preprocess), t1)
        show_image(axes[i, 2], _difference(xs[i], advs[i], preprocess, 1), "difference")
        show_image(axes[i, 3], _difference(xs[i], advs[i], preprocess, amplify),
                   f"{amplify}× difference")
    fig.tight_layout()
    return fig


def top_k_bars(ax, probs, class_names, k=5, title=None, colors=None):
    """Horizontal bars of the ``k`` most probable classes, the most probable on top,
    each labelled with its name and p. colors: {class index: colour} to mark classes."""
    probs = np.asarray(to_numpy(probs), np.float64)
    top = np.argsort(-probs, kind="stable")[:k]
    ys = np.arange(len(top))[::-1]
    ax.barh(ys, probs[top], color=[(colors or {}).get(int(c), "0.6") for c in top])
    for y, c in zip(ys, top):
        name = str(class_names[c]).split(",")[0] if class_names is not None else str(c)
        ax.text(0.02, y, f"{name} {probs[c]:.2f}", va="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.tick_params(labelsize=6)
    ax.set_xlabel("p", fontsize=7)
    if title:
        ax.set_title(title, fontsize=8)


def adversarial_top_k_figure(rows, class_names, k=5, cell=2.3):
    """One row per attacked image: image | its top-k | adversarial image | its top-k |
    the perturbation, stretched so ±``levels`` grey levels span black to white, with a
    colour bar in grey levels (per channel).

    rows: dicts with pixels and adversarial (H, W[, 3]) 0–255, p and p_adv (K,) class
    probabilities, levels (the attack's ε in whole grey levels) and an optional title.
    The original class is drawn blue, the new top-1 class red in both bar charts.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    n = len(rows)
    fig, axes = plt.subplots(n, 5, figsize=(5 * cell + 0.6, n * cell + 0.5), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.15, 1, 1.15, 1]})
    for i, r in enumerate(rows):
        p, q = np.asarray(r["p"]), np.asarray(r["p_adv"])
        c0, c1 = int(p.argmax()), int(q.argmax())
        colors = {c0: "C0", c1: "C3"} if c1 != c0 else {c0: "C0"}
        levels = max(int(r["levels"]), 1)
        show_image(axes[i, 0], r["pixels"], r.get("title") or "image")
        top_k_bars(axes[i, 1], p, class_names, k, "top-5 before", colors)
        show_image(axes[i, 2], r["adversarial"], f"adversarial, ε = {levels}/255")
        top_k_bars(axes[i, 3], q, class_names, k, "top-5 after", colors)
        d = np.asarray(r["adversarial"], np.float64) - np.asarray(r["pixels"], np.float64)
        show_image(axes[i, 4], 0.5 + d / (2 * levels), f"perturbation ×{127.5 / levels:.0f}",
                   value_range=(0, 1))
        bar = fig.colorbar(ScalarMappable(Normalize(-levels, levels), "gray"), ax=axes[i, 4],
                           fraction=0.046, pad=0.03, ticks=[-levels, 0, levels])
        bar.ax.tick_params(labelsize=6)
        bar.set_label("grey levels", fontsize=7)
    fig.tight_layout()
    return fig


def corruption_curves(table, baseline=None, title="accuracy vs corruption severity"):
    """Accuracy vs severity (0 = clean) per corruption; the mean over corruptions in black.
    table: {"clean": a, name: [a_1..a_5]} (``corruption_accuracy``); baseline: dashed mean."""
    names = [k for k in table if k != "clean"]
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for k, name in enumerate(names):
        ys = [table["clean"], *table[name]]
        ax.plot(range(len(ys)), ys, "o-", ms=3, lw=1, color=plt.cm.tab10(k % 10), label=name)
    mean = [table["clean"], *np.mean([table[n] for n in names], axis=0)]
    ax.plot(range(len(mean)), mean, "k-", lw=2.5, label="mean")
    if baseline is not None:
        bnames = [k for k in baseline if k != "clean"]
        bmean = [baseline["clean"], *np.mean([baseline[n] for n in bnames], axis=0)]
        ax.plot(range(len(bmean)), bmean, "k--", lw=1.5, label="baseline mean")
    ax.set_xlabel("severity")
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="lower left")
    fig.tight_layout()
    return fig


def corruption_examples(image, names=None, seed=0, cell=1.0):
    """Rows = corruptions, columns = severities 0..5, for one uint8 image (H, W[, C])."""
    from ..techniques.corruptions import CORRUPTIONS, corrupt
    names = list(CORRUPTIONS if names is None else names)
    fig, axes = plt.subplots(len(names), 6, figsize=(6 * cell + 1, len(names) * cell + 0.3),
                             squeeze=False)
    for i, name in enumerate(names):
        for s in range(6):
            show_image(axes[i, s], corrupt(image, name, s, seed), f"severity {s}" if i == 0
                       else None)
        axes[i, 0].set_axis_on()
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        axes[i, 0].set_ylabel(name.replace("_", "\n"), fontsize=7)
    fig.tight_layout()
    return fig


def one_pixel_panel(results, preprocess=None, class_names=None, cell=1.7, probabilities=None):
    """Each attacked image with its changed pixel(s) circled, titled label → prediction.
    probabilities: per result (p before, p after) (K,) each: the titles then give the
    label's probability before and the top class's after ("Bag 0.99 → Sandal 0.61")."""
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(n * cell, cell + 0.6), squeeze=False)

    def name(c):
        return str(class_names[c]).split(",")[0] if class_names is not None else str(c)
    for i, (ax, r) in enumerate(zip(axes[0], results)):
        title = f"{name(r['label'])} → {name(r['prediction'])}"
        if probabilities is not None:
            p, q = (np.asarray(v) for v in probabilities[i])
            title = (f"{name(r['label'])} {p[r['label']]:.2f}\n→ {name(r['prediction'])} "
                     f"{q[r['prediction']]:.2f}" if r["success"] else
                     f"{name(r['label'])} {p[r['label']]:.2f}\n→ {q[r['label']]:.2f}")
        show_image(ax, to_pixels(r["image"], preprocess),
                   title + ("" if r["success"] else " (failed)"))
        for row, col, _ in r["pixels"]:
            ax.add_patch(plt.Circle((col, row), 1.5, fill=False, color="red", lw=1))
    fig.tight_layout()
    return fig


def template_mixing_row(x, weight, source, target, alphas, shape, *, preprocess=None,
                        predict=None, cell=1.5):
    """x + α·(w_t − w_s) for each α; ``predict(image) -> class`` titles each panel."""
    from ..techniques.adversarial import mix_templates
    fig, axes = plt.subplots(1, len(alphas), figsize=(len(alphas) * cell, cell + 0.4),
                             squeeze=False)
    for ax, a in zip(axes[0], alphas):
        img = mix_templates(x, weight, source, target, a).reshape(shape)
        title = f"α = {a:.3g}" + (f"\n→ {predict(img)}" if predict is not None else "")
        show_image(ax, to_pixels(img, preprocess), title)
    fig.tight_layout()
    return fig


def shape_bias_bars(results, title="shape vs texture decisions (cue conflict)"):
    """Stacked bars per model: fraction of shape / texture / neither decisions.
    results: {model name: dict from ``shape_bias``}."""
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(results), 3.2))
    names = list(results)
    bottom = np.zeros(len(names))
    for kind, color in (("shape", "C0"), ("texture", "C3"), ("neither", "0.7")):
        v = np.array([results[m][kind] / results[m]["n"] for m in names])
        ax.bar(names, v, bottom=bottom, color=color, label=kind)
        bottom += v
    for i, m in enumerate(names):
        ax.text(i, 1.02, f"{results[m]['shape_fraction']:.2f}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("fraction of images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def cue_conflict_figure(images, probabilities, labels, categories, titles, k=5, cell=2.3):
    """Geirhos' cue conflict, one column per image (the shape source, the texture source, the
    cue-conflict image): the image over its top-k classes, each bar coloured by the category
    it belongs to (the shape's blue, the texture's red, any other grey), and the sum of each
    category's probabilities under the bars.

    images: (H, W, 3) 0–255 each; probabilities: (N, n_classes); labels: class names;
    categories: {name: set of class indices}, the shape's first and the texture's second;
    titles: one per column."""
    colours = ["C0", "C3"]
    names = list(categories)
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(cell * n, 2.1 * cell), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 0.75]})
    for j, (img, p, title) in enumerate(zip(images, np.asarray(probabilities), titles)):
        show_image(axes[0, j], img, title)
        ax = axes[1, j]
        top = np.argsort(-p, kind="stable")[:k]
        colour = [next((colours[c] for c, name in enumerate(names) if t in categories[name]),
                       "0.6") for t in top]
        ys = np.arange(k)[::-1]
        ax.barh(ys, p[top], color=colour)
        for y, t in zip(ys, top):
            ax.text(0.02, y, f"{labels[t]} {p[t]:.2f}", va="center", fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.tick_params(labelsize=6)
        sums = "  ".join(f"Σ{name} {p[sorted(categories[name])].sum():.3f}" for name in names)
        ax.set_xlabel(f"top {k} classes\n{sums}", fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours[:len(names)]]
    fig.legend(handles, [f"{names[0]} classes (shape)", f"{names[1]} classes (texture)"][
        :len(names)], loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
