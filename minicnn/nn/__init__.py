"""Modules and layers, PyTorch-like and minimal: ``mc.nn.Conv2d``, ``mc.nn.Sequential``, ...

    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 14 * 14, 10, rng=1))
    model.layer_names()                  # ['0', '1', '2', '3', '4']
    model.load_state_dict(np.load("weights.npz"))
    with nn.capture(model, ["1"]) as acts:
        scores = model(x)

module.py: Parameter, Module (names, state_dict, train/eval, to) · layers.py: the layers ·
capture.py: reading and replacing layer outputs by name.
"""
from .module import Parameter, Module, StateDictError, UnknownLayerError, LoadResult
from .layers import (Sequential, Identity, Conv2d, ConvTranspose2d, Linear, ReLU, ReLU6,
                     MaxPool2d, MaxUnpool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout,
                     BatchNorm2d, BatchNorm1d)
from .capture import capture, forward_to, Activations

__all__ = ["Parameter", "Module", "StateDictError", "UnknownLayerError", "LoadResult",
           "Sequential", "Identity", "Conv2d", "ConvTranspose2d", "Linear", "ReLU", "ReLU6",
           "MaxPool2d", "MaxUnpool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout",
           "BatchNorm2d", "BatchNorm1d", "capture", "forward_to", "Activations"]
