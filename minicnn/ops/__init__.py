"""Differentiable primitives: one Function per op, forward and backward together.

Each module groups related ops; each op has a lowercase wrapper taking Tensors
(``conv2d(x, w, b)``) and a ``Function`` subclass (``Conv2d``) holding the
forward/backward pair. Import everything from here: ``mc.ops.conv2d``.
"""
from .basic import *        # noqa: F401,F403  add, mul, sum, reshape, concat, pad, linear, ...
from .activation import *   # noqa: F401,F403  relu, relu6, clamp, sigmoid (ReLU rules apply)
from .conv import *         # noqa: F401,F403  conv2d, conv_transpose2d (+ naive references)
from .pool import *         # noqa: F401,F403  max_pool2d, max_unpool2d, avg_pool2d, adaptive_avg_pool2d
from .loss import *         # noqa: F401,F403  softmax, log_softmax, cross_entropy, mse, ...
from .norm import *         # noqa: F401,F403  batch_norm, dropout
from .image import *        # noqa: F401,F403  gram_matrix, total_variation
