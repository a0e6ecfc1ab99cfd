"""Grad-CAM (Selvaraju et al. 2017): weight a conv layer's maps by their mean gradient.

    α_k = mean_ij ∂y_c / ∂A^k_ij,    L_c = ReLU(Σ_k α_k A^k)   (upsampled to the image)

Class-discriminative: two classes in one photo give two different maps.
"""
# %% An ImageNet model and a photo
import os
import numpy as np

import minicnn as mc
from minicnn.plot.attribution import attribution_panel, gradient_image, heatmap_overlay
from minicnn.plot.core import plt, save_figure, show_image
from minicnn.data.samples import fashion_samples, photo_samples
from minicnn.techniques.gradcam import guided_grad_cam, most_different_classes

model = mc.models.efficientnet_lite0(pretrained=True)
x = model.preprocess.load(photo_samples()[0])[0]
pixels = model.preprocess.deprocess(x)
print("default layer:", model.default_cam_layer)            # the last conv block

# %% Two classes of the photo, one map each: the top class, and the one of the top 5 whose
# map differs most from it (the two most probable, gown and mortarboard, are one object)
(a, b), (cam_a, cam_b), r = most_different_classes(model, x, k=5)
print(f"{model.labels[a]} vs {model.labels[b]}: the maps' correlation r = {r:.2f}")
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
show_image(axes[0], pixels, "image")
for ax, c, cam in zip(axes[1:3], (a, b), (cam_a, cam_b)):
    heatmap_overlay(ax, pixels, cam, title=model.labels[c], colorbar="L / p99")
show_image(axes[3], gradient_image(guided_grad_cam(model, x, a)), "guided Grad-CAM",
           value_range=(0, 1))
save_figure(fig, "demo-output/grad_cam.png")

# %% Every map side by side on the small net (saliency, guided backprop, Grad-CAM, occlusion)
small = mc.models.fashion_net(pretrained=True)
samples = fashion_samples()[:4]
xs = small.preprocess.preprocess(np.stack([img for img, _ in samples]))
save_figure(attribution_panel(small, xs, [k for _, k in samples]), "demo-output/attribution.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
