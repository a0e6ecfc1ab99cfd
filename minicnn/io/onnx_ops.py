"""How each minicnn op becomes ONNX nodes: one small translator per ``Function`` class.

A translator is called as ``translate(g, node, out)``:

    g     the graph being built (``onnx_export._Graph``): ``g.value(t)`` names an input,
          ``g.constant(name, array)`` stores a constant, ``g.add(op_type, inputs, out, **attrs)``
          appends the node that computes Tensor ``out``;
    node  the recorded op call: ``node.inputs`` (its positional inputs), ``node.params`` (its
          keyword settings: a pool's kernel_size, a clamp's bounds), ``node.ctx`` (what its
          forward saved);
    out   the Tensor it produced.

Everything an ONNX node needs is in the op call itself, never in the layer that made it, so a
layer used twice, or the functional ``ops.max_pool2d`` / ``ops.relu6``, export like any other.
An op that cannot be written raises NotImplementedError saying why; the exporter adds which
layer it belongs to.
"""
import numpy as np

from ..backend import to_numpy
from ..ops import activation, basic, conv, loss, norm, pool
from ..ops._util import pair

__all__ = ["TRANSLATORS"]


def _inputs(g, node, count):
    """Names of the first ``count`` inputs, the trailing ``None`` ones (a conv without bias) left out."""
    values = (list(node.inputs) + [None] * count)[:count]
    while values and values[-1] is None:
        values.pop()
    return [g.value(v) for v in values]


def _conv(g, node, out):
    kh, kw = node.inputs[1].shape[2:]
    (ph, pw), c = node.ctx.padding, node.ctx
    g.add("Conv", _inputs(g, node, 3), out, kernel_shape=[kh, kw], strides=list(c.stride),
          pads=[ph, pw, ph, pw], group=c.groups)


def _conv_transpose(g, node, out):
    """ONNX's ConvTranspose has PyTorch's weight layout (C_in, C_out/groups, kh, kw) and formula
    Ho = (H − 1)·s − 2p + kh + output_padding: the op's settings carry over one to one."""
    kh, kw = node.inputs[1].shape[2:]
    (ph, pw) = node.params["padding"]
    g.add("ConvTranspose", _inputs(g, node, 3), out, kernel_shape=[kh, kw],
          strides=list(node.params["stride"]), pads=[ph, pw, ph, pw],
          output_padding=list(node.params["output_padding"]), group=node.params["groups"])


def _linear(g, node, out):
    g.add("Gemm", _inputs(g, node, 3), out, transB=1)                  # x wᵀ + b


def _unary(op_type):
    def translate(g, node, out):
        g.add(op_type, [g.value(node.inputs[0])], out)
    translate.__name__ = f"_{op_type.lower()}"
    return translate


def _binary(op_type):
    def translate(g, node, out):
        g.add(op_type, [g.value(a, like=out) for a in node.inputs], out)
    translate.__name__ = f"_{op_type.lower()}"
    return translate


def _clamp(g, node, out):
    """clamp(x, lo, hi) (relu6 is clamp(x, 0, 6)) -> Clip with its bounds as constants."""
    x, dtype = node.inputs[0], out.dtype
    lo, hi = node.params["lo"], node.params["hi"]
    g.add("Clip", [g.value(x), g.constant(f"clip.min_{lo:g}", np.array(lo, dtype)),
                   g.constant(f"clip.max_{hi:g}", np.array(hi, dtype))], out)


def _pow(g, node, out):
    p = g.constant(g.unique("pow.exponent"), np.array(node.params["p"], out.dtype))
    g.add("Pow", [g.value(node.inputs[0]), p], out)


def _sum(g, node, out):
    """sum(x, axis, keepdims) -> ReduceSum with the axes as an input (opset 13 on)."""
    axes = node.params.get("axis")
    inputs = [g.value(node.inputs[0])]
    if axes is not None:
        inputs.append(g.constant(g.unique("axes"), np.array(axes, np.int64)))
    g.add("ReduceSum", inputs, out, keepdims=int(bool(node.params.get("keepdims", False))))


def _concat(g, node, out):
    g.add("Concat", [g.value(a) for a in node.inputs], out, axis=node.params["axis"])


def _softmax(op_type):
    def translate(g, node, out):
        g.add(op_type, [g.value(node.inputs[0])], out, axis=node.params.get("axis", -1))
    return translate


def _transpose(g, node, out):
    g.add("Transpose", [g.value(node.inputs[0])], out, perm=list(node.params["axes"]))


def _reshape(g, node, out):
    """flatten(x, k) -> ONNX Flatten(axis=k); any other reshape keeps the batch size free."""
    x = node.inputs[0]
    for k in range(1, x.ndim):
        if out.shape == x.shape[:k] + (int(np.prod(x.shape[k:])),):
            if x.ndim == 4 and x.shape[2:] != (1, 1):
                g.fixes_size(f"flattens a {x.shape[2]}×{x.shape[3]} map into {out.shape[-1]} "
                             f"features")
            return g.add("Flatten", [g.value(x)], out, axis=k)
    g.fixes_size(f"reshapes {x.shape} to the constant shape {out.shape}")
    shape = [0] + list(out.shape[1:]) if out.shape[:1] == x.shape[:1] else list(out.shape)
    g.add("Reshape", [g.value(x), g.constant(g.unique("shape"), np.array(shape, np.int64))], out)


def _pad(g, node, out):
    """Constant padding (``ops.pad``, e.g. TensorFlow's SAME padding) -> Pad."""
    widths, value = node.params["widths"], node.params.get("value", 0)
    g.fixes_size(f"pads by {widths}, widths computed for this input size")
    pads = [lo for lo, _ in widths] + [hi for _, hi in widths]
    inputs = [g.value(node.inputs[0]), g.constant(g.unique("pads"), np.array(pads, np.int64))]
    if value:
        inputs.append(g.constant(g.unique("pad_value"), np.array(value, out.dtype)))
    g.add("Pad", inputs, out)


def _pool_attrs(node, op):
    k = pair(op, "kernel_size", node.params["kernel_size"])
    s = k if node.params.get("stride") is None else pair(op, "stride", node.params["stride"])
    p = pair(op, "padding", node.params.get("padding", 0))
    return dict(kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                ceil_mode=int(bool(node.params.get("ceil_mode", False))))


def _max_pool(g, node, out):
    """MaxPool; with return_indices its second output, the argmax, is what MaxUnpool reads.
    (ONNX numbers the argmax over the whole (N, C, H, W) tensor, minicnn per (H, W) plane:
    the two never meet, the ONNX graph makes and uses its own.)"""
    attrs = _pool_attrs(node, "max_pool2d")
    x = g.value(node.inputs[0])
    if not node.params.get("return_indices"):
        return g.add("MaxPool", [x], out, **attrs)
    name = g.add("MaxPool", [x], out, extra_outputs=[".indices"], **attrs)
    g.pool_indices[id(node.ctx.indices)] = (name + ".indices", x, attrs)


def _max_unpool(g, node, out):
    """MaxUnpool with the indices of the MaxPool that made them, and that pool's input shape as
    the output shape (exact for odd sizes too, and for any batch size)."""
    found = g.pool_indices.get(id(node.inputs[1]))
    if found is None:
        raise NotImplementedError(
            "reads indices that no max_pool2d(return_indices=True) of this forward made; "
            "ONNX's MaxUnpool needs the indices of a MaxPool node of the same graph")
    indices, pooled, attrs = found
    shape = g.plain_node("Shape", [pooled], g.unique(pooled + ".shape"))
    g.add("MaxUnpool", [g.value(node.inputs[0]), indices, shape], out,
          kernel_shape=attrs["kernel_shape"], strides=attrs["strides"], pads=attrs["pads"])


def _avg_pool(g, node, out):
    g.add("AveragePool", [g.value(node.inputs[0])], out, **_pool_attrs(node, "avg_pool2d"),
          count_include_pad=int(bool(node.params.get("count_include_pad", True))))


def _adaptive_avg_pool(g, node, out):
    """To 1×1: GlobalAveragePool; bins that tile the input: AveragePool; otherwise the op's own
    definition, out = A_h @ x @ A_wᵀ, as two MatMuls with its (Ho, H) and (Wo, W) matrices."""
    x = node.inputs[0]
    (h, w), (ho, wo) = x.shape[2:], out.shape[2:]
    if (ho, wo) == (1, 1):
        return g.add("GlobalAveragePool", [g.value(x)], out)
    g.fixes_size(f"pools {h}×{w} to {ho}×{wo} with windows computed for that input size")
    if h % ho == 0 and w % wo == 0:
        k = [h // ho, w // wo]
        return g.add("AveragePool", [g.value(x)], out, kernel_shape=k, strides=k)
    prefix = g.unique("adaptive_pool")
    a_h = g.constant(prefix + ".rows", to_numpy(node.ctx.a_h))
    a_wt = g.constant(prefix + ".cols_t", to_numpy(node.ctx.a_w).T.copy())
    cols = g.plain_node("MatMul", [g.value(x), a_wt], prefix + ".x_cols")
    g.add("MatMul", [a_h, cols], out)


def _batch_norm(g, node, out):
    """BatchNormalization in eval mode: the running statistics are the op's own inputs."""
    if node.params.get("training", True):
        raise NotImplementedError("runs in training mode (batch statistics), which has no "
                                  "inference export; only eval-mode batch norm is exported")
    mean, var = node.params["running_mean"], node.params["running_var"]
    g.add("BatchNormalization", [g.value(node.inputs[0]), g.value(node.inputs[1]),
                                 g.value(node.inputs[2]), g.value(mean), g.value(var)], out,
          epsilon=float(node.params.get("eps", 1e-5)))


TRANSLATORS = {
    conv.Conv2d: _conv, conv.ConvTranspose2d: _conv_transpose, basic.Linear: _linear,
    activation.ReLU: _unary("Relu"), activation.Clamp: _clamp,
    activation.Sigmoid: _unary("Sigmoid"), activation.Tanh: _unary("Tanh"),
    pool.MaxPool2d: _max_pool, pool.MaxUnpool2d: _max_unpool, pool.AvgPool2d: _avg_pool,
    pool.GlobalAvgPool2d: _unary("GlobalAveragePool"), pool.AdaptiveAvgPool2d: _adaptive_avg_pool,
    norm.BatchNorm: _batch_norm, norm.Dropout: _unary("Identity"),      # dropout in eval mode
    basic.Add: _binary("Add"), basic.Sub: _binary("Sub"), basic.Mul: _binary("Mul"),
    basic.Div: _binary("Div"), basic.MatMul: _binary("MatMul"), basic.Pow: _pow,
    basic.Exp: _unary("Exp"), basic.Log: _unary("Log"), basic.Sqrt: _unary("Sqrt"),
    basic.Sum: _sum, basic.Concat: _concat, basic.Reshape: _reshape, basic.Transpose: _transpose,
    basic.Pad: _pad, loss.Softmax: _softmax("Softmax"), loss.LogSoftmax: _softmax("LogSoftmax"),
}
