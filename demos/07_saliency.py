"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014), its two classic
remedies — SmoothGrad (Smilkov et al. 2017) and integrated gradients (Sundararajan et al.
2017) — and a segmentation seeded by the smoothed map (Simonyan et al. §6, with a
GrabCut-style graph cut).

    w = ∂y_c / ∂x  (class score before the softmax),   S[i, j] = max_ch |w[ch, i, j]|
    SmoothGrad:  mean of |∂y_c/∂x| at x + ε_k,  ε_k ~ N(0, (0.15 · range)²)
    IG:          (x − x') ⊙ mean of ∂y_c/∂x along x' → x;   Σ IG = y_c(x) − y_c(x')
"""
# %% An ImageNet model and a photo available offline (matplotlib's sample image)
import os

import numpy as np

import minicnn as mc
from minicnn.plot.attribution import segmentation_figure
from minicnn.plot.core import image_grid, normalize_map, save_figure
from minicnn.data.samples import photo_samples
from minicnn.techniques.grabcut import saliency_segmentation
from minicnn.techniques.gradients import integrated_gradients, saliency, smoothgrad

model = mc.models.efficientnet_lite0(pretrained=True)
path = photo_samples()[0]                                   # grace_hopper.jpg
x = model.preprocess.load(path)[0]                          # (3, 224, 224)
pixels = model.preprocess.deprocess(x)                      # (224, 224, 3), 0–255

# %% The class the model sees, and its saliency map: one backward pass
with mc.no_grad():
    logits = model(mc.tensor(np.stack([x, np.zeros_like(x)]))).data
c = int(logits[0].argmax())
print("predicted:", model.labels[c])
S = saliency(model, x, c)                                   # (224, 224): speckle on this net

# %% SmoothGrad: the same gradient at 16 noisy copies, averaged (seeded, 8 per batch)
SG = smoothgrad(model, x, c, n_samples=16, batch_size=8, seed=0, kind="magnitude").max(axis=0)

# %% Integrated gradients from the zero input; completeness says how far the sum got
IG = integrated_gradients(model, x, c, steps=32, batch_size=8)
print(f"Σ IG = {IG.sum():.2f}  vs  y(x) − y(0) = {logits[0, c] - logits[1, c]:.2f} "
      "(more steps close the gap)")

# %% Plot the image and the three maps
save_figure(image_grid([pixels] + [255 * normalize_map(m) for m in
                                   (S, SG, np.abs(IG).max(axis=0))], ncols=4, mode="clip",
                       titles=[model.labels[c], "saliency", "SmoothGrad", "integrated gradients"],
                       cell=3), "demo-output/saliency.png")

# %% Object mask from the SmoothGrad map: seeds (fg: its top 5%; bg: its bottom 5% and a strip
# along the top, left and right edges), colour models, min-cut
mask = saliency_segmentation(pixels, SG)
save_figure(segmentation_figure(pixels, SG, mask, map_title="SmoothGrad"),
            "demo-output/saliency_segmentation.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
