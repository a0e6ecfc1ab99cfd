"""From classification to segmentation.

Convolutionalization (Long, Shelhamer & Darrell 2015): a Linear layer reading a (C, h, w)
map is a conv with kernel W.reshape(D, C, h, w), so the classifier slides over a larger
canvas and gives a class map. Encoder–decoders give a class per pixel: SegNet
(Badrinarayanan et al. 2017) up-samples with the pooling switches, U-Net (Ronneberger et
al. 2015) with transposed convs and skip connections.
"""
# %% A canvas of shipped Fashion-MNIST samples
import os
import numpy as np

import minicnn as mc
from minicnn.data import FASHION_MNIST_CLASSES
from minicnn.plot.core import save_figure
from minicnn.plot.segmentation import class_heatmaps_figure
from minicnn.data.samples import fashion_samples
from minicnn.data.segdata import SegmentationCanvases
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

# %% Per-pixel labels from the shipped encoder–decoders (minicnn train segnet|unet ...)
from minicnn.models import segmentation
from minicnn.plot.segmentation import segmentation_figure
from minicnn.data.segdata import SEG_CLASSES
from minicnn.training.segmentation import predict_masks

small = SegmentationCanvases("test", size=64, length=4, items=(1, 3), source=source)
images, masks = small.arrays()                  # 64×64: the encoder pools three times
preds = {name: predict_masks(getattr(segmentation, name)(pretrained=True), images)
         for name in ("segnet", "segnet_transposed", "unet")}
save_figure(segmentation_figure(images, masks, preds, SEG_CLASSES), "demo-output/segmentation.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
