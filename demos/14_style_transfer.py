"""Neural style transfer and texture synthesis with Gram matrices (Gatys, Ecker & Bethge
2015, 2016):

    L(I) = α·mean(F_c(I) − F_c(C))² + β·Σ_l w_l ‖G_l(I) − G_l(S)‖²,   G_l = F_l F_lᵀ / (C·H·W)
"""
# %% An ImageNet model, a content photo and a style image (drawn here: wavy colour stripes)
import os
import numpy as np

import minicnn as mc
from minicnn.data.images import load_image
from minicnn.plot.core import save_figure
from minicnn.plot.optimization import inversion_figure, style_transfer_panel
from minicnn.data.samples import photo_samples
from minicnn.techniques.style import style_transfer, texture_synthesis

model = mc.models.efficientnet_lite0(pretrained=True)
content = model.preprocess.preprocess(load_image(photo_samples()[0], size=(128, 128)))
i, j = np.mgrid[0:128, 0:128] / 128
phase = 6 * np.pi * (i + 0.15 * np.sin(6 * np.pi * j))
stripes = 127.5 + 127.5 * np.stack([np.sin(phase + k) for k in (0, 2.1, 4.2)], -1)
style = model.preprocess.preprocess(stripes.astype(np.uint8))

# %% Content from a middle layer, style from three; L-BFGS from the content image.
#    β (style_weight) depends on the net's activation scale: watch history["style"] fall
layers = ["_stem_relu", "_blocks.1._depthwise_relu", "_blocks.5._depthwise_relu"]
out, history = style_transfer(model, content, style, content_layer=layers[-1],
                              style_layers=layers, steps=30, style_weight=30, tv_weight=1e-3)
print(f"style loss ÷{history['style'][0] / history['style'][-1]:.1f}")      # about 9×
save_figure(style_transfer_panel(content, style, out, history, model.preprocess),
            "demo-output/style_transfer.png")

# %% Texture synthesis: the style term alone, from noise, coarse to fine (3 sizes)
texture, _ = texture_synthesis(model, style, layers, steps=20, octaves=3, tv_weight=1e-2)
save_figure(inversion_figure(style, {"texture": texture}, model.preprocess, first="style",
                             suptitle="texture synthesis"), "demo-output/texture.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
