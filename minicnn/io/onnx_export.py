"""Export a model to ONNX, the exchange format of inference engines (onnxruntime, TensorRT, ...).

    mc.io.export_onnx(model, example_input, "fashion_net.onnx")

An ONNX file is a graph: *nodes* (``Conv``, ``Relu``, ``MaxPool``, ...) that read
and write named values, the weights stored as named constants (*initializers*),
and the graph's inputs and outputs. minicnn already records that graph: a forward
pass with gradients on links every output Tensor to the op (``Function``) and the
input Tensors that made it (``tensor.creator``). So the export is

1. run ``model(example_input)`` once in eval mode, capturing every layer's output;
2. walk the recorded ops from the input to the output (``_ops_in_order``);
3. translate each op with the function registered for its ``Function`` class in
   ``TRANSLATORS``; a Parameter input becomes an initializer named by its
   ``state_dict`` key (``features.0.weight``).

Most ops carry everything ONNX needs (a conv's stride and padding are in its
``ctx``, its weight is an input). Pooling, batch-norm and clamp take their settings
as keyword arguments that the graph does not keep: their translators read them from
the *layer* that produced the op's output (``nn.MaxPool2d``'s kernel size,
``nn.BatchNorm2d``'s eps and running statistics). An op without a translator is an
error naming the layer it belongs to. ``onnx`` is only needed here, imported when
``export_onnx`` runs (``pip install onnx``; ``onnxruntime`` runs the result).
"""
import os

import numpy as np

from .. import nn
from ..ops import activation, basic, conv, norm, pool
from ..autograd import Tensor, enable_grad
from ..backend import to_numpy
from ..ops._util import pair

__all__ = ["export_onnx", "TRANSLATORS", "OPSET"]

OPSET = 17


class _Graph:
    """The ONNX graph being built: nodes, initializers, and a name for every value."""

    def __init__(self, helper, numpy_helper, layers, param_names):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.layers = layers              # id(output Tensor) -> [(layer name, layer), ...]
        self.param_names = param_names    # id(Parameter) -> state_dict key
        self.nodes, self.initializers = [], {}
        self.value_names = {}             # id(Tensor) -> ONNX value name
        self.used = set()

    def unique(self, name):
        base, n = name, 1
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name

    def constant(self, name, array):
        """An initializer (weights, shapes, ...) named ``name``; the same name is stored once."""
        if name not in self.initializers:
            self.initializers[name] = self.numpy_helper.from_array(np.asarray(array), name)
            self.used.add(name)
        return name

    def value(self, t):
        """The ONNX name of an op's input: a computed value, a parameter, or a constant."""
        if isinstance(t, Tensor) and id(t) in self.value_names:
            return self.value_names[id(t)]
        if isinstance(t, Tensor) and id(t) in self.param_names:
            return self.constant(self.param_names[id(t)], to_numpy(t.data))
        data = to_numpy(t.data if isinstance(t, Tensor) else t)
        return self.constant(self.unique("constant"), data)

    def layer_of(self, t, kind=None):
        """(name, layer) of the leaf layer whose output is ``t`` (of class ``kind``), or None."""
        for name, layer in self.layers.get(id(t), ()):
            if not layer.children() and (kind is None or isinstance(layer, kind)):
                return name, layer
        return None

    def add(self, op_type, inputs, out, **attrs):
        """Append a node computing Tensor ``out``; its value is named after its layer if any."""
        found = self.layer_of(out)
        name = self.unique(found[0] if found else op_type.lower())
        self.value_names[id(out)] = name
        self.nodes.append(self.helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name


# ----------------------------------------------------------------- translators
# Each takes (graph, node, out): node.inputs are the op's positional inputs,
# node.ctx what its forward saved, out the Tensor it produced.

def _conv(g, node, out):
    x, w, b = (list(node.inputs) + [None])[:3]
    kh, kw = w.shape[2:]
    (ph, pw), c = node.ctx.padding, node.ctx
    inputs = [g.value(x), g.value(w)] + ([g.value(b)] if b is not None else [])
    g.add("Conv", inputs, out, kernel_shape=[kh, kw], strides=list(c.stride),
          pads=[ph, pw, ph, pw], group=c.groups)


def _linear(g, node, out):
    x, w, b = (list(node.inputs) + [None])[:3]
    inputs = [g.value(x), g.value(w)] + ([g.value(b)] if b is not None else [])
    g.add("Gemm", inputs, out, transB=1)                        # x wᵀ + b


def _relu(g, node, out):
    g.add("Relu", [g.value(node.inputs[0])], out)


def _identity(g, node, out):                                    # dropout in eval mode
    g.add("Identity", [g.value(node.inputs[0])], out)


def _add(g, node, out):
    g.add("Add", [g.value(a) for a in node.inputs], out)


def _concat(g, node, out):
    g.add("Concat", [g.value(a) for a in node.inputs], out, axis=node.ctx.axis)


def _reshape(g, node, out):
    """flatten(x, k) -> ONNX Flatten(axis=k); any other reshape keeps the batch size free."""
    x = node.inputs[0]
    for k in range(1, x.ndim):
        if out.shape == x.shape[:k] + (int(np.prod(x.shape[k:])),):
            return g.add("Flatten", [g.value(x)], out, axis=k)
    shape = [0] + list(out.shape[1:]) if out.shape[:1] == x.shape[:1] else list(out.shape)
    g.add("Reshape", [g.value(x), g.constant(g.unique("shape"), np.array(shape, np.int64))], out)


def _pad(g, node, out):
    """Zero padding of the last two axes (``ops.pad``, e.g. TensorFlow's SAME padding)."""
    widths = node.ctx.widths
    inner = tuple(slice(lo, n - hi) for (lo, hi), n in zip(widths, out.shape))
    border = np.ones(out.shape, bool)
    border[inner] = False
    if np.any(to_numpy(out.data)[border] != 0):
        raise NotImplementedError("ops.pad with a non-zero value has no ONNX export here")
    pads = [lo for lo, _ in widths] + [hi for _, hi in widths]
    g.add("Pad", [g.value(node.inputs[0]), g.constant(g.unique("pads"), np.array(pads, np.int64))],
          out)


def _needs_layer(g, out, kind, op):
    found = g.layer_of(out, kind)
    if found is None:
        raise NotImplementedError(
            f"op {op} reads its settings from an nn.{kind.__name__} layer, but its output is no "
            f"layer's (last) output: call it through one nn.{kind.__name__} layer per use")
    return found[1]


def _pool_attrs(layer, x):
    k = pair("export", "kernel_size", layer.kernel_size)
    s = pair("export", "stride", layer.stride)
    p = pair("export", "padding", layer.padding)
    return dict(kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                ceil_mode=int(layer.ceil_mode))


def _max_pool(g, node, out):
    layer = _needs_layer(g, out, nn.MaxPool2d, "max_pool2d")
    if layer.return_indices:
        raise NotImplementedError("max_pool2d with return_indices=True (its indices feed "
                                  "max_unpool2d) has no ONNX export here")
    g.add("MaxPool", [g.value(node.inputs[0])], out, **_pool_attrs(layer, node.inputs[0]))


def _avg_pool(g, node, out):
    layer = _needs_layer(g, out, nn.AvgPool2d, "avg_pool2d")
    g.add("AveragePool", [g.value(node.inputs[0])], out, **_pool_attrs(layer, node.inputs[0]),
          count_include_pad=int(layer.count_include_pad))


def _global_avg_pool(g, node, out):
    g.add("GlobalAveragePool", [g.value(node.inputs[0])], out)


def _adaptive_avg_pool(g, node, out):
    """To 1×1: GlobalAveragePool; bins that tile the input: AveragePool; otherwise the op's own
    definition, out = A_h @ x @ A_wᵀ, as two MatMuls with its (Ho, H) and (Wo, W) matrices."""
    x = node.inputs[0]
    (h, w), (ho, wo) = x.shape[2:], out.shape[2:]
    if (ho, wo) == (1, 1):
        return g.add("GlobalAveragePool", [g.value(x)], out)
    if h % ho == 0 and w % wo == 0:
        k = [h // ho, w // wo]
        return g.add("AveragePool", [g.value(x)], out, kernel_shape=k, strides=k)
    prefix = g.unique("adaptive_pool")
    a_h = g.constant(prefix + ".rows", to_numpy(node.ctx.a_h))
    a_wt = g.constant(prefix + ".cols_t", to_numpy(node.ctx.a_w).T.copy())
    cols = prefix + ".x_cols"
    g.nodes.append(g.helper.make_node("MatMul", [g.value(x), a_wt], [cols], name=cols))
    g.add("MatMul", [a_h, cols], out)


def _batch_norm(g, node, out):
    layer = _needs_layer(g, out, nn.BatchNorm2d, "batch_norm")     # BatchNorm1d is a subclass
    name = g.layer_of(out, nn.BatchNorm2d)[0]
    mean = g.constant(f"{name}.running_mean", to_numpy(layer.running_mean))
    var = g.constant(f"{name}.running_var", to_numpy(layer.running_var))
    g.add("BatchNormalization", [g.value(node.inputs[0]), g.value(layer.weight),
                                 g.value(layer.bias), mean, var], out, epsilon=layer.eps)


def _clamp(g, node, out):
    _needs_layer(g, out, nn.ReLU6, "clamp")
    x = node.inputs[0]
    lo = g.constant("relu6.min", np.array(0, x.dtype))
    hi = g.constant("relu6.max", np.array(6, x.dtype))
    g.add("Clip", [g.value(x), lo, hi], out)


TRANSLATORS = {
    conv.Conv2d: _conv, basic.Linear: _linear, activation.ReLU: _relu, activation.Clamp: _clamp,
    pool.MaxPool2d: _max_pool, pool.AvgPool2d: _avg_pool, pool.GlobalAvgPool2d: _global_avg_pool,
    pool.AdaptiveAvgPool2d: _adaptive_avg_pool, norm.BatchNorm: _batch_norm,
    norm.Dropout: _identity, basic.Add: _add, basic.Concat: _concat, basic.Reshape: _reshape,
    basic.Pad: _pad,
}


# ------------------------------------------------------------------- the walk

def _ops_in_order(out):
    """Every Tensor computed on the way to ``out``, each after the Tensors it was computed from."""
    order, seen, stack = [], set(), [(out, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
        elif id(t) not in seen:
            seen.add(id(t))
            stack.append((t, True))
            stack += [(x, False) for x in t.creator.inputs
                      if isinstance(x, Tensor) and x.creator is not None and id(x) not in seen]
    return order


def _where(t, order, layers):
    """Which layer an op belongs to: the leaf layer that output ``t``, or else the first
    layer whose output was computed from it (the op ran inside or just before it)."""
    def leaf(x):
        names = [(n, m) for n, m in layers.get(id(x), ()) if not m.children()]
        return names[0] if names else (layers.get(id(x)) or [None])[-1]
    found = leaf(t)
    if found:
        return found
    reached = {id(t)}
    for x in order:
        if any(id(i) in reached for i in x.creator.inputs if isinstance(i, Tensor)):
            reached.add(id(x))
            if leaf(x):
                return leaf(x)
    return None


def _trace(model, example_input):
    """Run ``model`` on ``example_input`` in eval mode, recording the ops and every layer's output."""
    data = example_input.data if isinstance(example_input, Tensor) else example_input
    x = Tensor(data, requires_grad=True)         # so every op computed from it is recorded
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with enable_grad(), nn.capture(model, model.layer_names()) as acts:
            y = model(x)
    finally:
        for m, mode in modes:
            m.training = mode
    if not isinstance(y, Tensor):
        raise ValueError(f"export_onnx: {type(model).__name__}'s forward returns a "
                         f"{type(y).__name__}; only a single output Tensor can be exported")
    layers = {}
    for name, t in acts.items():
        layers.setdefault(id(t), []).append((name, model.get_submodule(name)))
    return x, y, layers


def export_onnx(model, example_input, path, opset=OPSET):
    """Write ``model`` as an ONNX graph to ``path``; return the checked ``onnx.ModelProto``.

    example_input: an array or Tensor of the shape the model takes, e.g. (1, 1, 28, 28);
        the exported graph accepts any batch size (dimension "N") with the same C, H, W.
    The model runs once in eval mode (dropout is the identity, BatchNorm uses its
    running statistics); its train/eval flags are restored afterwards. Weights are
    initializers named by their state_dict keys; values are named by their layers.
    Raises NotImplementedError naming the layer whose op has no ONNX export, and
    ImportError when the ``onnx`` package is not installed.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install onnx "
                          "(and onnxruntime to run the exported file)") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx: model must be an nn.Module, got {type(model).__name__}")
    x, y, layers = _trace(model, example_input)
    if y.creator is None:
        raise ValueError("export_onnx: the output does not depend on the input")
    param_names = {id(p): name for name, p in model.named_parameters()}
    graph = _Graph(helper, numpy_helper, layers, param_names)
    graph.value_names[id(x)] = graph.unique("input")
    order = _ops_in_order(y)
    for t in order:
        node = t.creator
        translate = TRANSLATORS.get(node.fn)
        try:
            if translate is None:
                raise NotImplementedError(f"op {node.fn.__name__} has no ONNX export; exportable "
                                          f"ops: {', '.join(f.__name__ for f in TRANSLATORS)}")
            translate(graph, node, t)
        except NotImplementedError as err:
            where = _where(t, order, layers)
            at = (f"layer '{where[0]}' ({type(where[1]).__name__})" if where
                  else f"the forward of {type(model).__name__}")
            raise NotImplementedError(f"export_onnx: {at}: {err}") from None
    graph.nodes.append(helper.make_node("Identity", [graph.value_names[id(y)]], ["output"],
                                        name="output"))
    dtype = helper.np_dtype_to_tensor_dtype(np.dtype(x.dtype))
    graph_proto = helper.make_graph(
        graph.nodes, getattr(model, "arch", type(model).__name__),
        [helper.make_tensor_value_info("input", dtype, ["N", *x.shape[1:]])],
        [helper.make_tensor_value_info("output", dtype, ["N", *y.shape[1:]])],
        initializer=list(graph.initializers.values()))
    proto = helper.make_model(graph_proto, producer_name="minicnn",
                              opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 8)       # readable by older onnxruntime releases
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, os.fspath(path))
    return proto
