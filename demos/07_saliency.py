"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014), and a segmentation
seeded by it (their section 6, with a GrabCut-style graph cut).

    w = ∂y_c / ∂x  (class score before the softmax),   S[i, j] = max_ch |w[ch, i, j]|
"""
# %% An ImageNet model and a photo available offline (matplotlib's sample image)
import os
import minicnn as mc
from minicnn.plot.attribution import segmentation_figure
from minicnn.plot.core import image_grid, normalize_map, save_figure
from minicnn.data.samples import photo_samples
from minicnn.techniques.grabcut import saliency_segmentation
from minicnn.techniques.gradients import saliency

model = mc.models.efficientnet_lite0(pretrained=True)
path = photo_samples()[0]                                   # grace_hopper.jpg
x = model.preprocess.load(path)[0]                          # (3, 224, 224)
pixels = model.preprocess.deprocess(x)                      # (224, 224, 3), 0–255

# %% The class the model sees, and its saliency map: one backward pass
with mc.no_grad():
    c = int(model(mc.tensor(x[None])).data.argmax())
print("predicted:", model.labels[c])
S = saliency(model, x, c)                                   # (224, 224)

# %% Plot the image and its map
save_figure(image_grid([pixels, 255 * normalize_map(S)], ncols=2, mode="clip",
                       titles=[model.labels[c], "saliency"], cell=3),
            "demo-output/saliency.png")

# %% Object mask from the saliency: seeds, colour models, min-cut
mask = saliency_segmentation(pixels, S)
save_figure(segmentation_figure(pixels, S, mask), "demo-output/saliency_segmentation.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
