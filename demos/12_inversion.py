"""Feature inversion (Mahendran & Vedaldi 2015): which images share this image's code?

    x* = argmin_x ‖φ_l(x) − φ_l(x0)‖² / ‖φ_l(x0)‖² + α·TV(x)/n + β·‖x‖²/n

Deeper codes keep less of the image: the reconstructions get vaguer with depth.
"""
# %% Model and image
import os
import minicnn as mc
from minicnn.plot.core import save_figure
from minicnn.plot.optimization import inversion_figure
from minicnn.data.samples import fashion_samples
from minicnn.techniques.inversion import invert_layers

model = mc.models.fashion_net(pretrained=True)
image, _ = fashion_samples()[0]                      # a T-shirt
x = model.preprocess.preprocess(image)               # (1, 1, 28, 28)

# %% Reconstruct from four codes with L-BFGS (features.8 needs ~300 steps: 38% code error
#    after 100, 3.7% after 300)
layers = ["features.1", "features.4", "features.8", "classifier.1"]
recons, errors = invert_layers(model, x, layers, steps=300, alpha=0.1, beta=1e-3)
for layer in layers:
    print(f"{layer:>14}: relative code error {errors[layer]:.2e}")

# %% Original, then each reconstruction
save_figure(inversion_figure(x, recons, model.preprocess, errors), "demo-output/inversion.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
