"""Occlusion sensitivity (Zeiler & Fergus 2014, Fig. 7): slide a grey patch over the image
and ask the network again,  prob[r, c] = p(target | x with the patch at (r, c)).
"""
# %% Model and a shipped test image
import os
import minicnn as mc
from minicnn.plot.attribution import occlusion_figure
from minicnn.plot.core import save_figure
from minicnn.data import FASHION_MNIST_CLASSES
from minicnn.data.samples import fashion_samples
from minicnn.techniques.occlusion import occlusion

model = mc.models.fashion_net(pretrained=True)
image, label = fashion_samples()[1]                 # a trouser
x = model.preprocess.preprocess(image)[0]           # (1, 28, 28)

# %% Every 6×6 patch position, stride 2, evaluated in batches of 64
res = occlusion(model, x, target=label, size=6, stride=2, fill="gray", batch_size=64)
print("p(label) unoccluded:", res.base_prob, " lowest with a patch:", res.prob.min())

# %% Probability map and most-probable class per position
save_figure(occlusion_figure(image, res, FASHION_MNIST_CLASSES), "demo-output/occlusion.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
