"""Nearest neighbours in feature space vs pixel space (Krizhevsky et al. 2012, Fig. 4).

Images whose penultimate-layer codes are close share their class even when their pixels
differ; pixel-space neighbours share brightness and layout.
"""
# %% Model and test images
import os
import minicnn as mc
from minicnn.data import load_fashion_mnist
from minicnn.plot.core import save_figure
from minicnn.plot.representations import plot_neighbors
from minicnn.techniques.neighbors import extract_features, label_agreement, nearest_neighbors

model = mc.models.fashion_net(pretrained=True)
images, labels = load_fashion_mnist("test")
images, labels = images[:5000], labels[:5000]
x = model.preprocess.preprocess(images)

# %% Codes of the penultimate layer ("fc7"), then brute-force neighbours
feats = extract_features(model, x)                           # (5000, 128)
by_feature, _ = nearest_neighbors(feats[:6], feats, k=7, exclude_self=True)
by_pixel, _ = nearest_neighbors(x[:6].reshape(6, -1), x.reshape(len(x), -1), k=7,
                                exclude_self=True)
print("same label, features:", label_agreement(by_feature, labels, labels[:6]))
print("same label, pixels:  ", label_agreement(by_pixel, labels, labels[:6]))

# %% Query, then its neighbours; a red frame marks another class
fig = plot_neighbors(images[:6], images, {"features": by_feature, "pixels": by_pixel},
                     labels=(labels, labels[:6]))
save_figure(fig, "demo-output/neighbors.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
