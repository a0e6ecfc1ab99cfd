"""minicnn: a from-scratch NumPy/CuPy engine for understanding convolutional networks.

    import minicnn as mc
    x = mc.tensor(array, requires_grad=True)
    y = mc.ops.conv2d(x, w, b, stride=1, padding=0)
    score.backward(relu_rule="guided")
"""
from .backend import get_array_module, to_numpy, use, as_backend
from .autograd import (Tensor, Function, tensor, no_grad, enable_grad, relu_rule,
                       current_relu_rule, RELU_RULES)
from . import ops

__version__ = "0.1.0"

_LAZY = {"nn", "gradcheck", "io", "data", "models", "techniques", "plot", "training"}
_MOVED = {"optim": "nn.optim", "images": "data.images", "cifar": "data.cifar"}   # mc.optim, ...


def __getattr__(name):
    # Higher layers load on first use so `import minicnn` stays light.
    if name in _LAZY:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    if name in _MOVED:
        import importlib
        return importlib.import_module(f".{_MOVED[name]}", __name__)
    if name == "capture":
        from .nn import capture
        return capture
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
