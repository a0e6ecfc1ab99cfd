"""Top images, their receptive-field patches (Zeiler & Fergus 2014; Girshick et al. 2014)
and the effective receptive field (Luo et al. 2016).

For channel c of a layer, score every image by s_c(x) = max_ij a_c(x)[i, j] and keep the
k best; crop each to the receptive field of the maximizing position.
"""
# %% Load the model and the Fashion-MNIST test set (Debian: apt-get install dataset-fashion-mnist)
import os
import minicnn as mc
from minicnn.data import load_fashion_mnist
from minicnn.plot.attribution import erf_figure
from minicnn.plot.core import image_grid, save_figure
from minicnn.plot.representations import plot_top_patches
from minicnn.techniques.receptive_field import effective_receptive_field
from minicnn.techniques.top_activations import top_activations, top_patches

model = mc.models.fashion_net(pretrained=True)
images, labels = load_fashion_mnist("test")
x = model.preprocess.preprocess(images[:5000])
layer = "features.8"                                # the last conv block's ReLU

# %% The 8 images that excite channels 0..5 most (streamed in batches)
top = top_activations(model, x, layer, units=range(6), k=8)
grid = [images[i] for row in top.indices for i in row]
save_figure(image_grid(grid, ncols=8, suptitle=f"{layer}: one row per channel"),
            "demo-output/top_images.png")

# %% The patches channel 3 actually saw (its receptive field at the maximum)
res = top_patches(model, x, layer, unit=3, k=8)
print("receptive field:", res["rf"])
save_figure(plot_top_patches(res, title=f"{layer} channel 3"), "demo-output/top_patches.png")

# %% Effective receptive fields grow with depth
maps = effective_receptive_field(model, ["features.1", "features.3", "features.6", "features.8"])
save_figure(erf_figure(maps), "demo-output/erf.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
