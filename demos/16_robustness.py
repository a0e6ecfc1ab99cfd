"""Robustness: common corruptions at 5 severities (Hendrycks & Dietterich 2019) and
accuracy under PGD attacks (Madry et al. 2018).
"""
# %% Model and 500 test images
import os
import minicnn as mc
from minicnn.data import load_fashion_mnist
from minicnn.plot.adversarial import corruption_curves, corruption_examples
from minicnn.plot.core import save_figure
from minicnn.techniques.adv_training import robustness
from minicnn.techniques.corruptions import corruption_accuracy, corrupt

model = mc.models.fashion_net(pretrained=True)
images, labels = load_fashion_mnist("test")
images, labels = images[:500], labels[:500]

# %% What the corruptions look like
save_figure(corruption_examples(images[0]), "demo-output/corruptions.png")
blurred = corrupt(images[:8], "motion_blur", severity=3, seed=0)      # same shape and dtype

# %% Accuracy per corruption and severity
table = corruption_accuracy(model, images, labels)
print("clean:", table["clean"], " motion blur:", table["motion_blur"])
save_figure(corruption_curves(table), "demo-output/corruption_curves.png")

# %% Accuracy on PGD adversarial examples of growing ε
x = model.preprocess.preprocess(images[:200])
print(robustness(model, x, labels[:200], eps_list=(0.02, 0.05, 0.1), steps=10))
print(f"wrote the figures into {os.path.abspath('demo-output')}")
