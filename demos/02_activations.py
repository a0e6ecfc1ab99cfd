"""Activation grids (Yosinski et al. 2015; Karpathy's ConvNetJS): every channel of a layer
for one input. Many channels are zero (ReLU); some follow edges, some whole parts.
"""
# %% Load the model and a shipped test image
import os
import minicnn as mc
from minicnn.plot.core import save_figure
from minicnn.plot.representations import plot_activation_grid
from minicnn.data.samples import fashion_samples
from minicnn.techniques.filters import activation_grids

model = mc.models.fashion_net(pretrained=True)
image, label = fashion_samples()[9]                 # an ankle boot, uint8 28×28
x = model.preprocess.preprocess(image)              # (1, 1, 28, 28) model input

# %% Read the activations of some layers by name (mc.capture underneath)
acts = activation_grids(model, x, ["features.1", "features.3", "features.8"])
for name, a in acts.items():
    print(name, a.shape, f"{(a == 0).mean():.0%} zeros")

# %% One figure per layer
for name, a in acts.items():
    save_figure(plot_activation_grid(a, name), f"demo-output/activations_{name}.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
