"""Deconvnet projections (Zeiler & Fergus 2014): send one unit's activation back down to
pixels — max-unpool with the pooling switches, rectify, transposed filters.

    at every ReLU:  R_in = R_out · (R_out > 0)      (the forward mask is ignored)

The image reaches this down-pass only through the max-pool switches (and a unit's starting
activation): on a net without max-pooling, such as EfficientNet-Lite0, the class deconvnet
is the same picture for every input. fashion_net and cifar_net are conv/ReLU/max-pool nets.
"""
# %% Model, test images
import os
import minicnn as mc
from minicnn.data import load_fashion_mnist
from minicnn.plot.attribution import deconvnet_panel, gradient_image
from minicnn.plot.core import image_grid, save_figure
from minicnn.data.samples import fashion_samples
from minicnn.techniques.deconvnet import deconvnet, deconvnet_projection, edge_correlation

model = mc.models.fashion_net(pretrained=True)
image, label = fashion_samples()[8]                  # a bag
x = model.preprocess.preprocess(image)[0]

# %% The explicit down-pass (max_unpool2d, relu, conv_transpose2d) for channel 5 of features.8 ...
explicit = deconvnet_projection(model, x, "features.8", unit=5)
# ... is backprop with the deconvnet ReLU rule, from the same signal
by_rule = deconvnet(model, x, layer="features.8", unit=5)
print("same image:", abs(explicit - by_rule).max())

# %% For the class score instead of one unit
by_class = deconvnet(model, x, target=label)
other, _ = fashion_samples()[3]
print(f"|deconvnet| vs this image's edges r = {edge_correlation(by_class, image):.2f}, "
      f"vs another image's r = {edge_correlation(by_class, other):.2f}")
save_figure(image_grid([image, 255 * gradient_image(explicit), 255 * gradient_image(by_class)],
                       ncols=3, mode="clip", titles=["image", "features.8 ch 5", "class"],
                       cell=2), "demo-output/deconvnet.png")

# %% Zeiler & Fergus' Fig. 2: top-9 activations of a few channels, projected and as patches
images, _ = load_fashion_mnist("test")
xs = model.preprocess.preprocess(images[:3000])
save_figure(deconvnet_panel(model, xs, "features.8", channels=[0, 1, 2]),
            "demo-output/deconvnet_panel.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
