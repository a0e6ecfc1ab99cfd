"""DeepDream (Mordvintsev, Olah & Tyka 2015): amplify what a layer already sees,

    I ← I + η · ∇_I ½‖a_l(I)‖² / mean|∇|        on an octave pyramid, coarse to fine
"""
# %% An ImageNet model and a photo (a smaller size keeps it fast on a CPU)
import os
import minicnn as mc
from minicnn.data.images import load_image
from minicnn.plot.core import save_figure
from minicnn.plot.optimization import deepdream_octaves
from minicnn.data.samples import photo_samples
from minicnn.techniques.deepdream import deepdream

model = mc.models.efficientnet_lite0(pretrained=True)
pixels = load_image(photo_samples()[0], size=(192, 192))
x = model.preprocess.preprocess(pixels)              # (1, 3, 192, 192)

# %% Dream at a block's output (stride 32, 192 channels): 4 octaves of 20 steps, jitter.
# A block's output is unclipped and can grow; a ReLU6 inside a block saturates at 6
# (at _blocks.5._depthwise_relu the energy grew only ×1.2-1.3 per octave: faint stripes).
dream, history = deepdream(model, x, "_blocks.11", steps=20, step_size=3.0,
                           octaves=4, octave_scale=1.4, jitter=4, seed=0)
print("½‖a‖² before/after each octave:", history["energy_before"], history["energy_after"])

# %% The input, then the dream after each octave
save_figure(deepdream_octaves(x, history, model.preprocess), "demo-output/deepdream.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
