"""Class visualization (Simonyan et al. 2014; Yosinski et al. 2015): the image a class
score likes best, by gradient ascent on the pixels,

    I* = argmax_I  S_c(I) − λ‖I‖²       (+ jitter and blur to keep it natural)
"""
# %% The small net: every class, two random starts
import os
import minicnn as mc
from minicnn.data import FASHION_MNIST_CLASSES
from minicnn.plot.core import save_figure
from minicnn.plot.optimization import class_visualization_grid
from minicnn.techniques.class_vis import class_visualization

model = mc.models.fashion_net(pretrained=True)
images = []
for c in range(10):
    img, history = class_visualization(model, c, steps=120, lr=0.1, l2=1e-2, jitter=1,
                                       blur_sigma=0.5, blur_every=2, init="random", seed=[0, 1])
    images.append(img)                                  # (2, 1, 28, 28) preprocessed
    print(FASHION_MNIST_CLASSES[c], "score", history["objective"][-1])
save_figure(class_visualization_grid(images, model.preprocess, FASHION_MNIST_CLASSES, [0, 1]),
            "demo-output/class_visualization.png")

# %% An ImageNet class, coarse to fine, with the "redirected" ReLU rule against dead units
net = mc.models.efficientnet_lite0(pretrained=True)
img, _ = class_visualization(net, 130, steps=30, shape=(3, 160, 160), lr=0.05, l2=1e-3,
                             decay=0.01, jitter=8, blur_sigma=1.0, blur_every=2, octaves=2,
                             init="random", relu_rule="redirected")
save_figure(class_visualization_grid([[img[0]]], net.preprocess, [net.labels[130]]),
            "demo-output/class_visualization_imagenet.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
