"""Adversarial examples (Szegedy et al. 2014; Goodfellow, Shlens & Szegedy 2015; Madry et
al. 2018; Su et al. 2019). ε is in [0, 1] pixel units: 8/255 = eight grey levels.

    FGSM:  x' = x + ε·sign(∇ₓ J(x, y))
    PGD:   δ ← clip(δ + α·sign(∇ J(x0 + δ, y)), −ε, ε)     (random start, k steps)
"""
# %% Why: in d dimensions a linear score moves by ε‖w‖₁ ~ ε·d
import os
import numpy as np

import minicnn as mc
from minicnn.data import FASHION_MNIST_CLASSES as NAMES
from minicnn.plot.adversarial import adversarial_panel, one_pixel_panel, required_eps_plot
from minicnn.plot.core import save_figure
from minicnn.data.samples import fashion_samples
from minicnn.techniques.adversarial import fgsm, linear_example, pgd, required_eps, smallest_eps
from minicnn.techniques.one_pixel import one_pixel_attack
from minicnn.training import predict

ex = linear_example(eps=0.5)                # 10-D: P 0.047 → 0.881
print(f"w·x {ex['score']} → {ex['adv_score']},  P {ex['prob']:.3f} → {ex['adv_prob']:.3f}")
save_figure(required_eps_plot(required_eps([10, 100, 1000, 10_000, 150_528]), ex),
            "demo-output/required_eps.png")

# %% Attack the small net on four shipped test images
model = mc.models.fashion_net(pretrained=True)
samples = fashion_samples()[:4]
x = model.preprocess.preprocess(np.stack([img for img, _ in samples]))
y = [label for _, label in samples]
x_fgsm = fgsm(model, x, y, eps=0.1)
x_pgd = pgd(model, x, y, eps=0.1, steps=20, seed=0)
for name, adv in (("clean", x), ("FGSM", x_fgsm), ("PGD", x_pgd)):
    print(name, [NAMES[k] for k in predict(model, adv).argmax(axis=1)])

# %% ε = 0.1 (25 grey levels) is plainly visible; how small can it be? Per image, the least ε
#    that flips the label (doubling, then bisection to 5%)
eps, x_min = smallest_eps(model, x, np.array(y), pgd, steps=20, seed=0)
print("smallest PGD ε (grey levels):", np.round(255 * eps, 1))

# %% Original | adversarial | difference | 10× difference
titles = [(NAMES[a], f"ε = {255 * e:.2g}/255 → {NAMES[b]}")
          for a, b, e in zip(y, predict(model, x_min).argmax(axis=1), eps)]
save_figure(adversarial_panel(x, x_min, model.preprocess, titles), "demo-output/pgd.png")

# %% One pixel is sometimes enough (differential evolution over row, column and value)
res = [one_pixel_attack(model, xi, yi, pixels=1, maxiter=60, popsize=30) for xi, yi in zip(x, y)]
save_figure(one_pixel_panel(res, model.preprocess, NAMES), "demo-output/one_pixel.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
