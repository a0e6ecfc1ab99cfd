"""Guided backpropagation (Springenberg et al. 2015, "Striving for simplicity"):

    at every ReLU:  R_in = R_out · (x > 0) · (R_out > 0)

backprop's forward mask *and* the deconvnet's rectified signal: only positive evidence
flows back. The rule is a parameter of one backward pass: score.backward(relu_rule="guided").
"""
# %% An ImageNet model and a photo
import os
import minicnn as mc
from minicnn.plot.attribution import gradient_image
from minicnn.plot.core import image_grid, save_figure
from minicnn.data.samples import photo_samples
from minicnn.techniques.gradients import guided_backprop, input_gradient

model = mc.models.efficientnet_lite0(pretrained=True)
x = model.preprocess.load(photo_samples()[0])[0]           # (3, 224, 224)
pixels = model.preprocess.deprocess(x)

# %% The same backward pass under two ReLU rules
with mc.no_grad():
    c = int(model(mc.tensor(x[None])).data.argmax())
plain = input_gradient(model, x, c)                         # relu_rule="standard"
guided = guided_backprop(model, x, c)                       # relu_rule="guided"
unit = guided_backprop(model, x, layer="_blocks.5._depthwise_relu", unit=3)   # one channel

# %% Compare
fig = image_grid([pixels, 255 * gradient_image(plain), 255 * gradient_image(guided),
                  255 * gradient_image(unit)], ncols=4, mode="clip", cell=2.5,
                 titles=[model.labels[c], "gradient", "guided backprop", "one channel"])
save_figure(fig, "demo-output/guided_backprop.png")
print(f"wrote the figures into {os.path.abspath('demo-output')}")
