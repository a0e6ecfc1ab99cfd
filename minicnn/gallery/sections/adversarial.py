"""Sections 15–16: adversarial examples and robustness."""
import numpy as np

from ..figure import Figure, Skip
from ._common import _models, _name, _photo_layers, _try, section


# ============================================================ adversarial, robustness
@section("adversarial", "15 · Adversarial examples")
def adversarial_section(ctx):
    from ...plot.adversarial import adversarial_panel, one_pixel_panel, required_eps_plot
    from ...techniques.adversarial import fgsm, linear_example, pgd, required_eps, smallest_eps
    from ...training import predict
    figs = [Figure("linear", lambda: required_eps_plot(required_eps(np.logspace(1, 5.2, 12)
                                                                    .astype(int)),
                                                       linear_example()),
                   "why linear models are easy to fool",
                   "w·(x + ε·sign(w)) = w·x + ε‖w‖₁, so ε = Δ / ‖w‖₁ ~ 1/d",
                   "Goodfellow, Shlens & Szegedy 2015", {"Δ": 5})]

    def titles(info, x, adv, eps):
        out = []
        for p, q, e in zip(_softmax(predict(info.model, x)), _softmax(predict(info.model, adv)),
                           eps):
            flip = f"→ {_name(info, q.argmax())} {q.max():.2f}"
            out.append((f"{_name(info, p.argmax())} {p.max():.2f}",
                        f"ε = {255 * e:.2g}/255\n{flip}" if np.isfinite(e) else
                        "no flip up to ε = 0.5"))
        return out

    for info in _models(ctx):
        if info.kind == "photo":
            figs += _photo_attacks(ctx, info)
            continue
        # the smallest ε that flips each label (doubling, then bisection to 5%): a fixed
        # ε = 0.1 on the small net was a plainly visible change
        steps, start, rtol = ctx.pick(5, 20), 1 / 255, 0.05

        def attack(info=info, steps=steps, method="fgsm"):
            x, _, labels, _ = ctx.samples(ctx.pick(3, 5))
            y = [ctx.target(info, xi[None], lab) for xi, lab in zip(x, labels)]
            options = {} if method == "fgsm" else dict(steps=steps, seed=ctx.seed)
            eps, adv = smallest_eps(info.model, x, np.array(y), fgsm if method == "fgsm" else pgd,
                                    eps_start=start, rtol=rtol, **options)
            # amplify the difference to about 40 grey levels (a power of ten)
            largest = np.nanmax(eps) if np.isfinite(eps).any() else 0.5
            amplify = int(10 ** max(1, round(np.log10(40 / (255 * largest)))))
            fig = adversarial_panel(x, adv, info.preprocess, titles(info, x, adv, eps), amplify)
            fig.suptitle(f"{method.upper()} at the smallest ε that flips each label "
                         "(ε in grey levels of 255)", fontsize=9)
            fig.tight_layout()
            return fig
        figs.append(Figure(f"{info.name}-fgsm", attack, "fast gradient sign method (FGSM)",
                           "x' = x + ε·sign(∇ₓ J(x, y)), ε = the smallest that flips the label",
                           "Goodfellow, Shlens & Szegedy 2015",
                           {"ε search": f"doubling from {255 * start:g}/255, then bisection "
                                        f"to {rtol:.0%}"}, info))
        figs.append(Figure(f"{info.name}-pgd", lambda a=attack: a(method="pgd"),
                           "projected gradient descent (PGD, L∞)",
                           "δ ← clip(δ + α·sign(∇ J(x0 + δ, y)), −ε, ε), random start; ε = "
                           "the smallest that flips the label", "Madry et al. 2018",
                           {"steps": steps, "ε search": f"doubling from {255 * start:g}/255,"
                                                        f" then bisection to {rtol:.0%}"},
                           info))

        def one_pixel(info=info):
            from ...plot.adversarial import one_pixel_panel
            x, _, y = ctx.dataset(ctx.pick(200, 500))
            shown, attacked = one_pixel_examples(info, x, y, ctx.pick(1, 2), **one_pixel_setting(ctx))
            if not shown:
                raise Skip(f"no image with {ONE_PIXEL_BAND[0]} ≤ p ≤ {ONE_PIXEL_BAND[1]} among "
                           "the test images here")
            fig = one_pixel_panel([r for r, _, _ in shown], info.preprocess, info.labels,
                                  probabilities=[(p, q) for _, p, q in shown])
            fooled = sum(r["success"] for r, _, _ in shown)
            return fig, (f"attacked in order: the test images classified correctly with "
                         f"{ONE_PIXEL_BAND[0]} ≤ p ≤ {ONE_PIXEL_BAND[1]} (sure, not certain), "
                         f"until {ctx.pick(1, 2)} flipped and {ctx.pick(1, 2)} did not; "
                         f"{attacked} attacked, {fooled} shown flipped, "
                         f"{len(shown) - fooled} shown held")
        figs.append(Figure(f"{info.name}-one-pixel", one_pixel, "one-pixel attack",
                           "differential evolution over (row, col, value) of the pixel(s)",
                           "Su, Vargas & Sakurai 2019", {k: v for k, v in one_pixel_setting(ctx).items()
                                                         if k != "seed"}, info))
    return figs


def one_pixel_setting(ctx):
    """The one-pixel attack's setting in the gallery (quick: three pixels, few generations)."""
    return dict(pixels=ctx.pick(3, 1), maxiter=ctx.pick(6, 30), popsize=ctx.pick(10, 20),
                seed=ctx.seed)


# the one-pixel figure attacks images the net is sure of but not certain (0.8 ≤ p ≤ 0.97):
# at p ≈ 1 one pixel flipped none of the shipped samples, below 0.8 any pixel does
ONE_PIXEL_BAND = (0.8, 0.97)


def one_pixel_examples(info, x, labels, n_each, band=ONE_PIXEL_BAND, max_attacks=24,
                       **options):
    """Attack, in order, the images that ``info.model`` classifies correctly with p(label)
    in ``band``, until ``n_each`` attacks have flipped the label and ``n_each`` have not (at
    most ``max_attacks`` attacks). Returns ([(result, p before, p after)], successes first —
    a student sees both what one pixel can do and that it often cannot; number attacked)."""
    from ...techniques.one_pixel import one_pixel_attack
    from ...training import predict
    p = _softmax(predict(info.model, x))
    labels = np.asarray(labels)
    sure = p[np.arange(len(p)), labels]
    candidates = np.flatnonzero((p.argmax(axis=1) == labels) & (sure >= band[0]) &
                                (sure <= band[1]))
    hits, misses, attacked = [], [], 0
    for i in candidates[:max_attacks]:
        if len(hits) >= n_each and len(misses) >= n_each:
            break
        r = one_pixel_attack(info.model, x[i], int(labels[i]), **options)
        attacked += 1
        kept = hits if r["success"] else misses
        if len(kept) < n_each:
            kept.append((r, p[i], _softmax(predict(info.model, r["image"]))[0]))
    return hits + misses, attacked


# the photo model's attacks: PGD's steps (few keep its search near a few seconds), and the
# most grey levels tried
PHOTO_PGD_STEPS, PHOTO_MAX_LEVELS = 3, 64


def photo_attack_rows(info, photos, method="fgsm", seed=0):
    """Rows of ``adversarial_top_k_figure`` for the ImageNet model: each photo attacked at the
    smallest whole number of grey levels that flips its top-1 class (the model's own
    prediction), rounded to an 8-bit image, with both probability vectors."""
    from ...techniques.adversarial import fgsm, pgd, smallest_grey_levels
    from ...training import predict
    x = np.concatenate([p.x for p in photos])
    y = predict(info.model, x).argmax(axis=1)
    attack, options = (fgsm, {}) if method == "fgsm" else \
        (pgd, dict(steps=PHOTO_PGD_STEPS, seed=seed))
    levels, adv = smallest_grey_levels(info.model, x, y, attack, max_levels=PHOTO_MAX_LEVELS,
                                       **options)
    p, q = _softmax(predict(info.model, x)), _softmax(predict(info.model, adv))
    pixels = info.preprocess.deprocess(adv)
    return [dict(pixels=ph.pixels, adversarial=np.clip(np.round(px), 0, 255).astype(np.uint8),
                 p=pi, p_adv=qi, levels=int(k), name=ph.name, title=ph.name)
            for ph, px, pi, qi, k in zip(photos, pixels, p, q, levels)]


def own_classes(name):
    """The ImageNet classes a sample photo shows (``SAMPLE_PHOTOS[name].imagenet``; () for
    a photo of the user's)."""
    from ...data.samples import SAMPLE_PHOTOS
    return SAMPLE_PHOTOS[name].imagenet if name in SAMPLE_PHOTOS else ()


def _photo_attacks(ctx, info):
    from ...plot.adversarial import adversarial_top_k_figure

    def build(method):
        rows = photo_attack_rows(info, ctx.photos(), method, ctx.seed)
        for r in rows:
            if _name(info, r["p_adv"].argmax()) in own_classes(r["name"]):
                r["title"] = f"{r['name']}\n(flips to another of its own\nImageNet classes)"
        fig = adversarial_top_k_figure(rows, info.labels)
        fig.suptitle(f"{method.upper()} at the smallest whole number of grey levels that flips "
                     "the top-1 class (the attacked image rounded to 8 bits)", fontsize=9)
        fig.tight_layout()
        said = "; ".join(f"{r['name']}: {r['levels']}/255 flips {_name(info, r['p'].argmax())} "
                         f"{r['p'].max():.2f} → {_name(info, r['p_adv'].argmax())} "
                         f"{r['p_adv'].max():.2f}" if r["levels"] > 0 else
                         f"{r['name']}: no flip up to {PHOTO_MAX_LEVELS}/255" for r in rows)
        return fig, said
    search = "ε = k/255, k = 1, 2, 4, … then bisection over whole k; pixels rounded to 8 bits"
    figs = [Figure(f"{info.name}-fgsm", lambda: build("fgsm"), "fast gradient sign method (FGSM)",
                   "x' = round(x + ε·sign(∇ₓ J(x, y))), ε = the fewest grey levels that flip "
                   "the label", "Goodfellow, Shlens & Szegedy 2015", {"ε search": search}, info)]
    if not ctx.quick:
        figs.append(Figure(f"{info.name}-pgd", lambda: build("pgd"),
                           "projected gradient descent (PGD, L∞)",
                           "δ ← clip(δ + α·sign(∇ J(x0 + δ, y)), −ε, ε), random start; "
                           "x' rounded to 8 bits", "Madry et al. 2018",
                           {"steps": PHOTO_PGD_STEPS, "ε search": search}, info))
    return figs


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# the cue-conflict figure: the espresso cup's shape painted with the cat's fur. The fur is the
# forehead between the ears, above the eyes: (left, top, right, bottom) in chelsea.png's own
# pixels — a texture with no part of the cat's shape (EfficientNet: 0.98 cat classes).
# The texture is matched up to the deep layer and the content kept there too: with the
# Gram matched at early layers only (the stem, blocks 1 and 5) the result is the cup in
# orange and brown with faint hatching, which the net reads as neither (a beer glass).
# 40 L-BFGS steps: the Gram loss falls ÷69, the cup's outline is still sharp (edge strength
# r = 0.38 with the cup's) and the net reads cat (0.66; top class lynx). With 100 steps
# (÷473) the fur washed the rim out (r = 0.29) and the top class was a hyena (cat 0.34).
CUE_SIDE, CUE_STEPS, CUE_STYLE_WEIGHT = 128, 40, 1000.0
FUR = (170, 0, 340, 90)
# categories by WordNet: the cup's "cup" classes; the cat's synset "cat, true cat"
# (n02121620), whose ImageNet-1k classes are the five domestic cats, the cougar and the lynx
CUE_CATEGORIES = {"cup": ("coffee mug", "espresso", "cup"),
                  "cat": ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat",
                          "cougar", "lynx")}


def cue_conflict(info, steps=CUE_STEPS, seed=0):
    """The shape of the espresso cup with the texture of the cat's fur, by style transfer on
    the ImageNet model itself (Geirhos et al. make theirs with AdaIN). Returns a dict:
    images (shape source, texture source, cue conflict) as 0–255 pixels, x (their model
    inputs), p (their class probabilities), scores (3, 2) summed probabilities of the cup
    and cat categories (``CUE_CATEGORIES``), classes ({category: class indices}), decision of
    the cue-conflict image ("shape" or "texture": the larger category), style_ratio (the
    Gram loss's first / last value), edges_r (the correlation of the result's edge strength
    with the cup's: the outline kept) and fur_edges_r (the fur's with the cup's: what an
    image that keeps nothing of the cup scores). (The content layer's features are no
    measure of the layout: the fur's correlate with the cup's at r = 0.57, through the
    channels' mean levels.)"""
    from PIL import Image
    from ...data.images import load_image
    from ...data.samples import sample_photo, sample_photo_path
    from ...techniques.deconvnet import edge_strength
    from ...techniques.shape_texture import decision_fractions
    from ...techniques.style import style_transfer
    from ...training import predict
    pre, model = info.preprocess, info.model
    cup = sample_photo("coffee", CUE_SIDE)
    fur = load_image(sample_photo_path("chelsea"), "RGB")
    left, top, right, bottom = FUR
    fur = np.asarray(Image.fromarray(np.ascontiguousarray(fur[top:bottom, left:right])).resize(
        (CUE_SIDE, CUE_SIDE), Image.Resampling.BILINEAR))
    early, mid, deep = _photo_layers(info)
    style_layers = [n for n in ("_stem_relu", early, mid, deep) if n in model.layer_names()]
    c, s = pre.preprocess(cup), pre.preprocess(fur)
    out, hist = style_transfer(model, c, s, deep, style_layers, steps,
                               style_weight=CUE_STYLE_WEIGHT, tv_weight=1e-3, seed=seed)
    out = pre.preprocess(np.clip(np.round(pre.deprocess(out[0])), 0, 255))
    x = np.concatenate([c, s, out])
    p = _softmax(predict(model, x))
    index = {str(name).split(",")[0]: k for k, name in enumerate(info.labels)}
    classes = {cat_: [index[n] for n in names] for cat_, names in CUE_CATEGORIES.items()}
    scores = np.stack([p[:, classes[cat_]].sum(axis=1) for cat_ in ("cup", "cat")], axis=1)
    decision = decision_fractions(scores[2:], [0], [1], decision="pair")["decisions"][0]
    images = [cup, fur, np.clip(pre.deprocess(out[0]), 0, 255)]
    e_cup, e_fur, e_out = (edge_strength(im).ravel() for im in images)
    return dict(images=images, x=x, p=p, scores=scores, classes=classes,
                decision=str(decision), edges_r=float(np.corrcoef(e_out, e_cup)[0, 1]),
                fur_edges_r=float(np.corrcoef(e_fur, e_cup)[0, 1]),
                style_ratio=float(hist["style"][0] / hist["style"][-1]))


def _cue_conflict_figure(ctx, info):
    from ...plot.adversarial import cue_conflict_figure

    def build():
        for name in ("coffee", "chelsea"):
            ctx.sample_photo(name)                    # their credits on the page
        r = cue_conflict(info, seed=ctx.seed)
        labels = [_name(info, k) for k in range(len(info.labels))]
        (cup0, _), (_, cat1), (cup2, cat2) = r["scores"]
        fig = cue_conflict_figure(r["images"], r["p"], labels,
                                  {k: set(v) for k, v in r["classes"].items()},
                                  ["shape: the espresso cup", "texture: the cat's fur",
                                   "cue conflict:\nthe cup's shape, the fur's texture"])
        by = {"texture": f"TEXTURE: the cat classes take {cat2:.2f}, the cup's {cup2:.3f}",
              "shape": f"SHAPE: the cup classes take {cup2:.2f}, the cat's {cat2:.3f}"}
        top = int(r["p"][2].argmax())
        fig.suptitle(f"{info.name} decides by {by[r['decision']]}\n(alone, the cup reads "
                     f"{cup0:.2f} cup, the fur {cat1:.2f} cat; the cue conflict's top class: "
                     f"{labels[top]} {r['p'][2, top]:.2f})", fontsize=9)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        return fig, (f"style (Gram) loss ÷{r['style_ratio']:.0f}; the cup's outline kept: "
                     f"the edge strength of the result and of the cup correlate r = "
                     f"{r['edges_r']:.2f} (the fur's and the cup's: {r['fur_edges_r']:.2f}); "
                     "one image — Geirhos et al. count decisions over 1280")
    return Figure(f"{info.name}-cue-conflict", build, "shape vs texture: a cue-conflict image",
                  "decision = shape if Σ p(shape category) > Σ p(texture category), else texture",
                  "Geirhos et al. 2019, ImageNet-trained CNNs are biased towards texture",
                  {"style transfer": f"{CUE_SIDE} px, {CUE_STEPS} L-BFGS steps, β = "
                                     f"{CUE_STYLE_WEIGHT:g}, Gram matrices from the stem to "
                                     "block 10, content at block 10",
                   "texture": "the cat's forehead between the ears, above the eyes",
                   "categories": "cup = coffee mug + espresso + cup; cat = WordNet's cat: "
                                 "the five domestic cats, cougar and lynx"}, info)


@section("robustness", "16 · Robustness")
def robustness_section(ctx):
    from ...plot.adversarial import corruption_curves, corruption_examples
    from ...techniques.corruptions import CORRUPTIONS, corruption_accuracy
    photo = _try(lambda: ctx.photo)
    extra = [_cue_conflict_figure(ctx, photo)] if photo is not None else []
    info = _try(lambda: ctx.small)
    if info is None:
        if extra:
            return extra
        info = ctx.small                             # Skip with the small net's reason
    n = ctx.pick(150, 400)
    names = ctx.pick(("gaussian_noise", "motion_blur", "contrast", "jpeg_compression"),
                     CORRUPTIONS)
    paper = "Hendrycks & Dietterich 2019 (ImageNet-C)"

    def examples():
        return corruption_examples(ctx.samples(1).pixels[0], seed=ctx.seed)

    def curves():
        x, pix, y = ctx.dataset(n)
        return corruption_curves(corruption_accuracy(info.model, pix, y, names, seed=ctx.seed),
                                 title=f"{info.name}: accuracy vs corruption severity")

    def robust():
        from ...plot.core import plt
        from ...techniques.adv_training import robustness
        x, _, y = ctx.dataset(ctx.pick(100, 200))
        eps = ctx.pick((0.02, 0.1), (0.02, 0.05, 0.1))
        r = robustness(info.model, x, y, eps_list=eps, steps=ctx.pick(5, 10), seed=ctx.seed)
        fig, ax = plt.subplots(figsize=(4, 3))
        keys = ["clean", *[float(e) for e in eps]]
        ax.bar([str(k) if k == "clean" else f"ε={k:g}" for k in keys], [r[k] for k in keys])
        ax.set_ylim(0, 1)
        ax.set_ylabel("top-1 accuracy")
        ax.set_title(f"{info.name}: accuracy under L∞ PGD", fontsize=9)
        fig.tight_layout()
        return fig
    return extra + [Figure(f"{info.name}-examples", examples, "common corruptions, severities 0–5",
                   "gaussian/shot/impulse noise, defocus/glass/motion/zoom blur, brightness, "
                   "contrast, JPEG", paper, {}, info),
            Figure(f"{info.name}-curves", curves, "accuracy under common corruptions",
                   "top-1 accuracy per corruption and severity", paper,
                   {"images": n, "corruptions": len(names)}, info),
            Figure(f"{info.name}-pgd", robust, "robust accuracy (PGD)",
                   "accuracy on x0 + δ*, δ* = PGD-k within ‖δ‖∞ ≤ ε", "Madry et al. 2018",
                   {"steps": ctx.pick(5, 10), "images": ctx.pick(100, 200)}, info)]
