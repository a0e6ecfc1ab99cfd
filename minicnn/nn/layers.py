"""The layers: thin Modules that own parameters and call one functional op.

Each layer keeps PyTorch's constructor arguments, parameter names and shapes
(so torchvision state_dicts load unchanged) and checks its input shape with a
message naming the layer, e.g.
"Conv2d 'features.3' expects 64 input channels, got input of shape (1, 32, 56, 56)".

Weights are drawn like PyTorch's default (Kaiming-uniform with a = √5, i.e.
U(−1/√fan_in, 1/√fan_in) for weights and biases) from ``rng``: a
``numpy.random.Generator`` or an int seed (None: fresh OS entropy). Pass one
Generator to every layer of a model to make the whole model reproducible.
"""
import math
from collections import OrderedDict

import numpy as np

from .. import ops
from ..ops._util import as_int, pair, shape_of
from .module import Module, new_buffer, new_parameter

__all__ = ["Sequential", "Identity", "Conv2d", "ConvTranspose2d", "Linear", "ReLU", "ReLU6",
           "MaxPool2d", "MaxUnpool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout",
           "BatchNorm2d", "BatchNorm1d"]


def _uniform(rng, shape, fan_in):
    """U(−1/√fan_in, 1/√fan_in): PyTorch's default init for conv / linear weights and biases."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape)


def _count(layer, name, v):
    """A size argument (channels, features, groups): an int >= 1 (NumPy ints too), or an error
    naming the layer, the argument and the value received."""
    n = as_int(layer, name, v)
    if n < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {v!r}")
    return n


def _expect(layer, x, ndim, layout):
    if len(shape_of(x)) != ndim:
        raise ValueError(f"{layer.label()} expects a {ndim}-d input {layout}, "
                         f"got input of shape {shape_of(x)}")


class Sequential(Module):
    """Modules run one after the other, named "0", "1", ... (or by an OrderedDict's keys).

    ``seq[i]`` is a layer, ``seq[a:b]`` a new Sequential keeping the layer names.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            items = list(layers[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(layers)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: layer {name!r} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def append(self, module):
        setattr(self, str(len(self)), module)
        return self

    def __len__(self):
        return len(self.children())

    def __iter__(self):
        return iter(self.children())

    def __getitem__(self, i):
        items = self.named_children()
        if isinstance(i, slice):
            return Sequential(OrderedDict(items[i]))
        return items[i][1]

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


class Identity(Module):
    """y = x (a placeholder, e.g. for a removed classifier head)."""

    def forward(self, x):
        return x


class _Convolution(Module):
    """What Conv2d and ConvTranspose2d share: their arguments, checked and kept; the input's
    channel count checked in forward; and how they print."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, groups,
                 output_padding=None):
        super().__init__()
        name = type(self).__name__
        in_channels, out_channels, groups = (_count(name, n, v) for n, v in (
            ("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)))
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels {in_channels} and out_channels "
                             f"{out_channels} must both be divisible by groups {groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = pair(name, "stride", stride, minimum=1)
        self.padding = pair(name, "padding", padding)
        if output_padding is not None:
            self.output_padding = pair(name, "output_padding", output_padding)

    def _check_input(self, x):
        _expect(self, x, 4, "(N, C, H, W)")
        if shape_of(x)[1] != self.in_channels:
            raise ValueError(f"{self.label()} expects {self.in_channels} input channels, "
                             f"got input of shape {shape_of(x)}")

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + (", bias=False" if self.bias is None else "")


class Conv2d(_Convolution):
    """The layer (a Module); its op is ``minicnn.ops.conv.Conv2d``.

    2-D convolution. weight: (out, in / groups, kh, kw), bias: (out,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 bias=True, rng=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups)
        rng = np.random.default_rng(rng)
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        self.weight = new_parameter(_uniform(
            rng, (self.out_channels, self.in_channels // self.groups, kh, kw), fan_in))
        self.bias = new_parameter(_uniform(rng, (self.out_channels,), fan_in)) if bias else None

    def forward(self, x):
        self._check_input(x)
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                          groups=self.groups)


class ConvTranspose2d(_Convolution):
    """The layer (a Module); its op is ``minicnn.ops.conv.ConvTranspose2d``.

    Transposed convolution (the adjoint of Conv2d). weight: (in, out / groups, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, rng=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups,
                         output_padding)
        rng = np.random.default_rng(rng)
        kh, kw = self.kernel_size
        # PyTorch computes fan_in from weight.shape[1]: out / groups · kh · kw.
        fan_in = self.out_channels // self.groups * kh * kw
        self.weight = new_parameter(_uniform(
            rng, (self.in_channels, self.out_channels // self.groups, kh, kw), fan_in))
        self.bias = new_parameter(_uniform(rng, (self.out_channels,), fan_in)) if bias else None

    def forward(self, x):
        self._check_input(x)
        return ops.conv_transpose2d(x, self.weight, self.bias, stride=self.stride,
                                    padding=self.padding, output_padding=self.output_padding,
                                    groups=self.groups)


class Linear(Module):
    """The layer (a Module); its op is ``minicnn.ops.basic.Linear``.

    y = x wᵀ + b. weight: (out_features, in_features), bias: (out_features,)."""

    def __init__(self, in_features, out_features, bias=True, rng=None):
        super().__init__()
        in_features = _count("Linear", "in_features", in_features)
        out_features = _count("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        rng = np.random.default_rng(rng)
        self.weight = new_parameter(_uniform(rng, (out_features, in_features), in_features))
        self.bias = new_parameter(_uniform(rng, (out_features,), in_features)) if bias else None

    def forward(self, x):
        _expect(self, x, 2, "(N, in_features)")
        if shape_of(x)[1] != self.in_features:
            raise ValueError(f"{self.label()} expects {self.in_features} input features, "
                             f"got input of shape {shape_of(x)}")
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class ReLU(Module):
    """The layer (a Module); its op is ``minicnn.ops.activation.ReLU``.

    max(x, 0); its backward follows the ReLU rule of the backward pass (guided, ...)."""

    def forward(self, x):
        return ops.relu(x)


class ReLU6(Module):
    """min(max(x, 0), 6) (MobileNet / EfficientNet-Lite)."""

    def forward(self, x):
        return ops.relu6(x)


class MaxPool2d(Module):
    """The layer (a Module); its op is ``minicnn.ops.pool.MaxPool2d``.

    Max-pooling; with return_indices=True returns (output, flat argmax indices)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, return_indices=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode, self.return_indices = padding, ceil_mode, return_indices

    def forward(self, x):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                              ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxUnpool2d(Module):
    """The layer (a Module); its op is ``minicnn.ops.pool.MaxUnpool2d``.

    Scatter pooled values back to the positions in ``indices`` (zeros elsewhere).

    ``forward(y, indices, output_size=None)``; without output_size it is inferred from
    kernel_size, stride, padding like PyTorch (ambiguous for odd sizes: prefer passing it).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, y, indices, output_size=None):
        return ops.max_unpool2d(y, indices, output_size, kernel_size=self.kernel_size,
                                stride=self.stride, padding=self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """The layer (a Module); its op is ``minicnn.ops.pool.AvgPool2d``.

    Mean of each kernel_size window (stride defaults to kernel_size); with
    count_include_pad=False the padded zeros are left out of the divisor."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad

    def forward(self, x):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                              ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """The layer (a Module); its op is ``minicnn.ops.pool.AdaptiveAvgPool2d``.

    Average-pool to a fixed output_size (H, W) whatever the input size; 1 = global."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return ops.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Flatten(Module):
    """(N, C, H, W) -> (N, C·H·W): merge dims from start_dim on."""

    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return ops.flatten(x, self.start_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}"


class Dropout(Module):
    """The layer (a Module); its op is ``minicnn.ops.norm.Dropout``.

    Zero each value with probability p in training (scaling the rest by 1/(1−p)); identity in eval.

    ``rng``: the module's own ``numpy.random.Generator`` (or an int seed), so runs repeat.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = np.random.default_rng(rng)

    def forward(self, x):
        return ops.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self):
        return f"p={self.p}"


class BatchNorm2d(Module):
    """Batch normalization over (N, H, W) per channel.

    Training: normalize with the batch statistics and update the buffers
    running_mean / running_var (momentum, unbiased variance, like PyTorch) and
    num_batches_tracked. Eval: normalize with the running statistics.
    Parameters: weight (γ, ones) and bias (β, zeros), both (C,).
    """
    _ndims = (4,)
    _layout = "(N, C, H, W)"

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        num_features = _count(type(self).__name__, "num_features", num_features)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = new_parameter(np.ones(num_features))
        self.bias = new_parameter(np.zeros(num_features))
        self.register_buffer("running_mean", new_buffer(np.zeros(num_features, np.float32)))
        self.register_buffer("running_var", new_buffer(np.ones(num_features, np.float32)))
        self.register_buffer("num_batches_tracked", new_buffer(np.zeros((), np.int64)))

    def forward(self, x):
        shape = shape_of(x)
        if len(shape) not in self._ndims or shape[1] != self.num_features:
            raise ValueError(f"{self.label()} expects input {self._layout} with "
                             f"C = {self.num_features}, got input of shape {shape}")
        y = ops.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                           self.training, momentum=self.momentum, eps=self.eps)
        if self.training:
            self.num_batches_tracked += 1       # in place, like the running statistics
        return y

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(BatchNorm2d):
    """Batch normalization of (N, C) or (N, C, L) inputs (statistics over N, and L)."""
    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"
