"""Sections 15–16: adversarial examples and robustness."""
import numpy as np

from ..figure import Figure
from ._common import _models, _name, section


# ============================================================ adversarial, robustness
@section("adversarial", "15 · Adversarial examples")
def adversarial_section(ctx):
    from ...plot.adversarial import adversarial_panel, one_pixel_panel, required_eps_plot
    from ...techniques.adversarial import (fgsm, linear_example, pgd, required_eps,
                                           smallest_eps)
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
        # the smallest ε that flips each label (doubling, then bisection to 5%): a fixed
        # ε = 0.1 on the small net was a plainly visible change
        # the photo model: 3 PGD steps and bisection to 20% keep its search near 15 s
        steps = ctx.pick(5, 20) if info.kind == "small" else 3
        start, rtol = (1 / 255, 0.05) if info.kind == "small" else (0.25 / 255, 0.2)

        def attack(info=info, steps=steps, start=start, rtol=rtol, method="fgsm"):
            if info.kind == "small":
                x, _, labels, _ = ctx.samples(ctx.pick(3, 5))
            else:
                x = np.concatenate([p.x for p in ctx.photos()])
                labels = [None] * len(x)
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
        if info.kind == "small" or not ctx.quick:
            figs.append(Figure(f"{info.name}-pgd", lambda a=attack: a(method="pgd"),
                               "projected gradient descent (PGD, L∞)",
                               "δ ← clip(δ + α·sign(∇ J(x0 + δ, y)), −ε, ε), random start; ε = "
                               "the smallest that flips the label", "Madry et al. 2018",
                               {"steps": steps, "ε search": f"doubling from {255 * start:g}/255,"
                                                            f" then bisection to {rtol:.0%}"},
                               info))
        if info.kind == "small":
            def one_pixel(info=info):
                from ...techniques.one_pixel import one_pixel_attack
                x, _, labels, _ = ctx.samples(ctx.pick(1, 3))
                res = [one_pixel_attack(info.model, xi, ctx.target(info, xi[None], lab),
                                        pixels=ctx.pick(3, 1), maxiter=ctx.pick(6, 40),
                                        popsize=ctx.pick(10, 30), seed=ctx.seed)
                       for xi, lab in zip(x, labels)]
                return one_pixel_panel(res, info.preprocess, info.labels)
            figs.append(Figure(f"{info.name}-one-pixel", one_pixel, "one-pixel attack",
                               "differential evolution over (row, col, value) of the pixel(s)",
                               "Su, Vargas & Sakurai 2019",
                               {"pixels": ctx.pick(3, 1), "generations": ctx.pick(6, 40)}, info))
    return figs


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@section("robustness", "16 · Robustness")
def robustness_section(ctx):
    from ...plot.adversarial import corruption_curves, corruption_examples
    from ...techniques.corruptions import corruption_accuracy
    info = ctx.small
    from ...techniques.corruptions import CORRUPTIONS
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
    return [Figure(f"{info.name}-examples", examples, "common corruptions, severities 0–5",
                   "gaussian/shot/impulse noise, defocus/glass/motion/zoom blur, brightness, "
                   "contrast, JPEG", paper, {}, info),
            Figure(f"{info.name}-curves", curves, "accuracy under common corruptions",
                   "top-1 accuracy per corruption and severity", paper,
                   {"images": n, "corruptions": len(names)}, info),
            Figure(f"{info.name}-pgd", robust, "robust accuracy (PGD)",
                   "accuracy on x0 + δ*, δ* = PGD-k within ‖δ‖∞ ≤ ε", "Madry et al. 2018",
                   {"steps": ctx.pick(5, 10), "images": ctx.pick(100, 200)}, info)]
