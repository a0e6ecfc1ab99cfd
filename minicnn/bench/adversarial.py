"""Adversarial attacks beside PyTorch CPU: PGD-10 (L∞, ε = 8/255) on 64 cifar_net images.

    minicnn bench --only adversarial

Both sides run the same algorithm on the same random weights (cifar_net, default init) and
images: 10 steps of δ ← clip(δ + α·sign(s·∇ₓJ), −ε, ε), x ← clip(x0 + s·δ, lo, hi) with the
pixel scale s and range [lo, hi] of CIFAR preprocessing, parameters frozen (gradients to
the input only), model in eval mode. One row also times FGSM (one step).
"""
import numpy as np

from .. import models
from .core import _torch, compare, section
from .reference_torch import torch_small_vgg

BATCH, STEPS, EPS = 64, 10, 8 / 255


def _torch_pgd(torch, net, x0, y, s, lo, hi, *, steps, alpha, eps):
    F = torch.nn.functional

    def run():
        x = x0.clone()
        for _ in range(steps):
            x.requires_grad_(True)
            loss = F.cross_entropy(net(x), y, reduction="sum")
            g, = torch.autograd.grad(loss, x)
            with torch.no_grad():
                delta = torch.clamp((x - x0) / s + alpha * torch.sign(g), -eps, eps)
                x = torch.minimum(torch.maximum(x0 + s * delta, lo), hi)
        return x
    return run


@section("adversarial")
def bench_adversarial(repeat):
    from ..techniques.adversarial import fgsm, pixel_scale, pgd
    from ..techniques.optimize import pixel_bounds
    torch = _torch()
    model = models.cifar_net().eval()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (BATCH, 32, 32, 3)).astype(np.uint8)
    x = model.preprocess.preprocess(pixels)
    y = rng.integers(0, 10, BATCH)
    alpha = 2.5 * EPS / STEPS

    def ours_pgd():
        return pgd(model, x, y, EPS, steps=STEPS, alpha=alpha, random_start=False)

    def ours_fgsm():
        return fgsm(model, x, y, EPS)
    theirs_pgd = theirs_fgsm = None
    if torch is not None:
        net = torch_small_vgg(model).eval()
        net.requires_grad_(False)
        lo, hi = (torch.from_numpy(np.asarray(b)) for b in pixel_bounds(model))
        s = torch.from_numpy(pixel_scale(model).astype(np.float32))
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        theirs_pgd = _torch_pgd(torch, net, tx, ty, s, lo, hi, steps=STEPS, alpha=alpha, eps=EPS)
        theirs_fgsm = _torch_pgd(torch, net, tx, ty, s, lo, hi, steps=1, alpha=EPS, eps=EPS)
    return [compare(f"PGD-{STEPS} L∞ cifar_net {BATCH}x3x32x32", ours_pgd, theirs_pgd,
                    repeat=repeat),
            compare(f"FGSM cifar_net {BATCH}x3x32x32", ours_fgsm, theirs_fgsm, repeat=repeat)]
