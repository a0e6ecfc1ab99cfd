"""Class visualization (Simonyan et al. 2014; Yosinski et al. 2015): the image a class
score likes best, by gradient ascent on the pixels,

    I* = argmax_I  S_c(I) − λ‖I − B‖² − μ·TV(I)       (+ jitter to keep it natural)

B is the background the L2 term pulls toward: Fashion-MNIST garments are light on black,
so B = black (the default, the mean image, would be a grey foreground colour).
"""
# %% The small net: every class, and the net's own verdict on each image
import os

import numpy as np

import minicnn as mc
from minicnn.data import FASHION_MNIST_CLASSES
from minicnn.plot.core import save_figure
from minicnn.plot.optimization import class_visualization_grid, class_visualization_panel
from minicnn.techniques.class_vis import class_visualization
from minicnn.training import predict

model = mc.models.fashion_net(pretrained=True)
images, probs = [], []
for c in range(10):
    img, history = class_visualization(model, c, steps=300, lr=0.02, optimizer="sgd", l2=0.3,
                                       tv=1.0, background="black", jitter=2, init="random")
    z = predict(model, img)[0]                           # img: (1, 1, 28, 28) preprocessed
    p = np.exp(z - z.max())[c] / np.exp(z - z.max()).sum()     # softmax of class c
    images.append(img)
    probs.append(p)
    print(f"{FASHION_MNIST_CLASSES[c]:>12}: p = {p:.2f}")     # all above 0.8
save_figure(class_visualization_panel(images, FASHION_MNIST_CLASSES, probs, model.preprocess),
            "demo-output/class_visualization.png")

# %% An ImageNet class, coarse to fine, with the "redirected" ReLU rule against dead units
net = mc.models.efficientnet_lite0(pretrained=True)
img, _ = class_visualization(net, 130, steps=30, shape=(3, 160, 160), lr=0.05, l2=1e-3,
                             decay=0.01, jitter=8, blur_sigma=1.0, blur_every=2, octaves=2,
                             init="random", relu_rule="redirected")
save_figure(class_visualization_grid([[img[0]]], net.preprocess, [net.labels[130]]),
            "demo-output/class_visualization_imagenet.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
