"""From classification to segmentation.

Convolutionalization (Long, Shelhamer & Darrell 2015): a Linear layer reading a (C, h, w)
map is a conv with kernel W.reshape(D, C, h, w), so the classifier slides over a larger
canvas and gives a class map. Encoder–decoders give a class per pixel: SegNet
(Badrinarayanan et al. 2017) up-samples with the pooling switches, U-Net (Ronneberger et
al. 2015) with transposed convs and skip connections.
"""
# %% A canvas of shipped Fashion-MNIST samples
import numpy as np

import minicnn as mc
from minicnn.data import FASHION_MNIST_CLASSES
from minicnn.plot.core import save_figure
from minicnn.plot.segmentation import class_heatmaps_figure
from minicnn.samples import fashion_samples
from minicnn.segdata import SegmentationCanvases
from minicnn.techniques.convolutionalize import convolutionalize, score_maps

samples = fashion_samples()
source = (np.stack([img for img, _ in samples]), np.array([k for _, k in samples]))
canvases = SegmentationCanvases("test", size=84, length=4, items=(2, 3), source=source)
canvas, mask, placed = canvases.canvas(0)
print([(FASHION_MNIST_CLASSES[p.label], p.top, p.left) for p in placed])

# %% The classifier, convolutionalized, at every 28×28 window (stride 4)
model = mc.models.fashion_net(pretrained=True)
fcn = convolutionalize(model, input_size=(28, 28))
probs = score_maps(fcn, model.preprocess.preprocess(canvas))[0]       # (10, Ho, Wo)
save_figure(class_heatmaps_figure(canvas, probs, fcn.stride, fcn.window, FASHION_MNIST_CLASSES),
            "demo-output/fcn_heatmaps.png")

# %% Per-pixel labels from a trained encoder–decoder (train it first, it is not shipped):
#    from minicnn.seg_training import train_segmentation_recipe, predict_masks
#    path, _ = train_segmentation_recipe("segnet", out_dir="weights")
#    from minicnn.models.segmentation import segnet
#    pred = predict_masks(segnet(pretrained=True), canvases.arrays()[0])
