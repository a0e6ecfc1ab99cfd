"""Export a model to ONNX, the exchange format of inference engines (onnxruntime, TensorRT, ...).

    mc.io.export_onnx(model, example_input, "fashion_net.onnx")

An ONNX file is a graph: *nodes* (``Conv``, ``Relu``, ``MaxPool``, ...) that read
and write named values, the weights stored as named constants (*initializers*),
and the graph's inputs and outputs. minicnn already records that graph: a forward
pass with gradients on links every output Tensor to the op (``Function``) and the
input Tensors that made it (``tensor.creator``). So the export is

1. run ``model(example_input)`` once in eval mode, recording every output of every layer
   (a layer used twice has two: ``mp`` and ``mp_2`` in the graph);
2. walk the recorded ops from the input to the output (``_ops_in_order``);
3. translate each op with the function registered for its ``Function`` class in
   ``onnx_ops.TRANSLATORS``; a Parameter or buffer input becomes an initializer named by its
   ``state_dict`` key (``features.0.weight``).

Every op call keeps its keyword settings (``node.params``: a pool's kernel size, a
clamp's bounds, batch-norm's eps and running statistics), so a translator needs no layer:
functional ops and reused layers export like any other. Max-pooling's indices feeding
max-unpooling (SegNet) become MaxPool's second output feeding MaxUnpool. An op without a
translator is an error naming the op and where it sits (the layer whose output it is, or the
forward that called it between two named layers). The file's ``metadata_props`` carry the
architecture, labels and preprocessing (``metadata.py``). ``onnx`` is only needed here,
imported when ``export_onnx`` runs (``pip install onnx``; ``onnxruntime`` runs the result).
"""
import numpy as np

from .. import nn
from ..autograd import Tensor, enable_grad
from ..backend import to_numpy
from .download import atomic_write
from .metadata import metadata_strings
from .onnx_ops import TRANSLATORS
from .paths import check_output_path

__all__ = ["export_onnx", "TRANSLATORS", "OPSET", "MIN_OPSET", "supported_opsets"]

OPSET = 17
MIN_OPSET = 13          # Softmax over one axis, Clip's and Pad's bounds as inputs: opset 13 on


def supported_opsets():
    """range of the opsets ``export_onnx`` writes: MIN_OPSET up to what the installed onnx knows."""
    import onnx
    return range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1)


class _Graph:
    """The ONNX graph being built: nodes, initializers, and a name for every value."""

    def __init__(self, helper, numpy_helper, layers, state_names, dynamic_size):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.layers = layers              # id(output Tensor) -> [(layer name, layer), ...]
        self.state_names = state_names    # id(Parameter or buffer) -> state_dict key
        self.nodes, self.initializers = [], {}
        self.value_names = {}             # id(Tensor) -> ONNX value name
        self.pool_indices = {}            # id(max_pool2d's indices) -> (name, pooled input, attrs)
        self.used = set()
        self.dynamic_size = dynamic_size  # H, W free: no node may bake the example's size in

    def fixes_size(self, what):
        """A translator is about to bake the example's H, W into the graph: fine, unless the
        export was asked for any input size."""
        if self.dynamic_size:
            raise NotImplementedError(
                f"{what}: the graph would work for this input size only; export with "
                f"dynamic_size=False (H, W fixed)")

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

    def value(self, t, like=None):
        """The ONNX name of an op's input: a computed value, a parameter or buffer (named by its
        state_dict key), or a constant (in ``like``'s float dtype when it is a float)."""
        if isinstance(t, Tensor) and id(t) in self.value_names:
            return self.value_names[id(t)]
        if id(t) in self.state_names:
            return self.constant(self.state_names[id(t)], to_numpy(getattr(t, "data", t)))
        data = np.asarray(to_numpy(t.data if isinstance(t, Tensor) else t))
        if like is not None and data.dtype.kind == "f":
            data = data.astype(like.dtype)
        return self.constant(self.unique("constant"), data)

    def plain_node(self, op_type, inputs, name, **attrs):
        """A helper node of no layer (a Shape, a MatMul half); returns its output's name."""
        self.used.add(name)
        self.nodes.append(self.helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def add(self, op_type, inputs, out, extra_outputs=(), **attrs):
        """Append a node computing Tensor ``out``, its value named after its layer if it is one's
        output (``mp``, a second call ``mp_2``); ``extra_outputs`` are suffixes of more outputs."""
        own = self.layers.get(id(out))
        name = self.unique(own[0][0] if own else op_type.lower())
        self.value_names[id(out)] = name
        outputs = [name] + [name + suffix for suffix in extra_outputs]
        self.used.update(outputs)
        self.nodes.append(self.helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return name


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


def _layer_text(name, layer):
    return f"layer '{name}' ({type(layer).__name__})"


def _neighbours(t, later, layers):
    """(before, after): the nearest layer output ``t`` was computed from (breadth first, the
    outermost layer that output it), and the first layer output among the ``later`` Tensors
    computed from ``t``."""
    before, queue, seen = None, list(t.creator.inputs), set()
    while queue and before is None:
        x = queue.pop(0)
        if not isinstance(x, Tensor) or id(x) in seen:
            continue
        seen.add(id(x))
        if id(x) in layers:
            before = layers[id(x)][-1][0]
        elif x.creator is not None:
            queue += list(x.creator.inputs)
    reached = {id(t)}
    for x in later:
        if any(id(i) in reached for i in x.creator.inputs if isinstance(i, Tensor)):
            reached.add(id(x))
            if id(x) in layers:
                return before, layers[id(x)][0][0]
    return before, None


def _where(model, t, later, layers):
    """Where the op that made ``t`` sits: the innermost layer whose output it is, or else the
    forward that called it — the innermost layer around both its neighbour layers."""
    if id(t) in layers:
        name, layer = layers[id(t)][0]                 # innermost first: calls end inside out
        inner = "" if not layer.children() else "in the forward of "
        return inner + _layer_text(name, layer)
    before, after = _neighbours(t, later, layers)
    paths = [n.split(".") for n in (before, after) if n is not None]
    common = []
    for parts in zip(*paths) if paths else ():
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    owner = ".".join(common)
    while owner and (isinstance(model.get_submodule(owner), nn.Sequential)
                     or owner in (before, after)):
        owner = owner.rpartition(".")[0]               # a Sequential's forward calls no op
    text = (f"the forward of {_layer_text(owner, model.get_submodule(owner))}" if owner
            else f"the forward of {type(model).__name__}")
    near = [f"after layer '{before}'"] * (before is not None) + \
           [f"before layer '{after}'"] * (after is not None)
    text += f" ({', '.join(near)})" if near else ""
    if after is not None:                 # a layer of its own making may run ops before its
        layer = model.get_submodule(after)           # main one (a padding before a conv)
        if not layer.children() and type(layer).__module__ != nn.Conv2d.__module__:
            text += f" or of {_layer_text(after, layer)}"
    return text


def _trace(model, example_input):
    """Run ``model`` on ``example_input`` in eval mode, recording the ops and every output of
    every layer (a layer called twice has two)."""
    data = example_input.data if isinstance(example_input, Tensor) else example_input
    x = Tensor(data, requires_grad=True)         # so every op computed from it is recorded
    layers, kept = {}, []

    def recorder(name):
        module = model.get_submodule(name)

        def record(out):
            kept.append(out)                     # alive until the export ends: ids stay unique
            layers.setdefault(id(out), []).append((name, module))
            return out
        return record

    names = model.layer_names()
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with enable_grad(), nn.capture(model, names,
                                       modify={n: recorder(n) for n in names}):
            y = model(x)
    finally:
        for m, mode in modes:
            m.training = mode
    if not isinstance(y, Tensor):
        raise ValueError(f"export_onnx: {type(model).__name__}'s forward returns a "
                         f"{type(y).__name__}; only a single output Tensor can be exported")
    return x, y, layers, kept


def _drop_unused_indices(nodes):
    """A MaxPool's indices output that no MaxUnpool reads (U-Net's encoder keeps them for a
    decoder that does not unpool) is left out: the pool computes only its maximum."""
    read = {name for node in nodes for name in node.input}
    for node in nodes:
        if node.op_type == "MaxPool" and len(node.output) == 2 and node.output[1] not in read:
            node.output.pop()


def _param_dtype(model):
    dtypes = {np.dtype(to_numpy(p.data).dtype) for _, p in model.named_parameters()}
    return dtypes.pop() if len(dtypes) == 1 else None


def _example(model, example_input):
    """The example as an array of the model's float dtype: a float64 example for float32
    weights is converted (ONNX wants one element type in the graph); other kinds are refused."""
    data = example_input.data if isinstance(example_input, Tensor) else example_input
    data = np.asarray(to_numpy(data))
    if data.dtype.kind != "f":
        raise TypeError(f"export_onnx: example_input must be a float array (N, C, H, W), got "
                        f"dtype {data.dtype} of shape {data.shape}")
    want = _param_dtype(model) or data.dtype
    if want not in (np.float32, np.float64, np.float16):
        raise TypeError(f"export_onnx: {type(model).__name__}'s parameters are {want}; "
                        f"only float16/32/64 models can be exported")
    return data.astype(want, copy=False)


def export_onnx(model, example_input, path, opset=OPSET, metadata=None, dynamic_size=False):
    """Write ``model`` as an ONNX graph to ``path``; return the checked ``onnx.ModelProto``.

    example_input: an array or Tensor of the shape the model takes, e.g. (1, 1, 28, 28);
        the exported graph accepts any batch size (dimension "N") with the same C (and H, W
        unless ``dynamic_size``).
        Its dtype follows the model's parameters (a float64 example of a float32 model is
        converted to float32).
    opset: the ONNX opset version, one of ``supported_opsets()`` (13 up to what the installed
        onnx knows); the file gets the IR version onnx's table gives for it.
    dynamic_size: also leave the input's height and width free ("H", "W"; a fully
        convolutional net such as the encoder-decoders); refused, naming the layer, when an op
        bakes the example's size in (a flatten into a classifier, a computed padding).
    metadata: ``{str: str}`` for the file's ``metadata_props``; by default the model's
        architecture, class labels and preprocessing (``io.metadata.read_metadata`` reads them).
    The model runs once in eval mode (dropout is the identity, BatchNorm uses its
    running statistics); its train/eval flags are restored afterwards. Weights are
    initializers named by their state_dict keys; values are named by their layers.
    Raises NotImplementedError naming the layer and the op that has no ONNX export,
    ValueError for an opset out of range, and ImportError without the ``onnx`` package.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install onnx "
                          "(and onnxruntime to run the exported file)") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx: model must be an nn.Module, got {type(model).__name__}")
    opsets = supported_opsets()
    if not (isinstance(opset, int) and opset in opsets):
        raise ValueError(f"export_onnx: opset={opset!r} is not supported: give one of "
                         f"{opsets.start}..{opsets.stop - 1} (onnx {onnx.__version__})")
    path = check_output_path(path, "export_onnx")
    x, y, layers, _kept = _trace(model, _example(model, example_input))
    if y.creator is None:
        raise ValueError("export_onnx: the output does not depend on the input")
    state_names = {id(p): name for name, p in model.named_parameters()}
    state_names.update({id(b): name for name, b in model.named_buffers()})
    graph = _Graph(helper, numpy_helper, layers, state_names, bool(dynamic_size))
    graph.value_names[id(x)] = graph.unique("input")
    order = _ops_in_order(y)
    for i, t in enumerate(order):
        node = t.creator
        translate = TRANSLATORS.get(node.fn)
        try:
            if translate is None:
                raise NotImplementedError(
                    f"has no ONNX export; exportable ops: "
                    f"{', '.join(sorted(f.__name__ for f in TRANSLATORS))}")
            translate(graph, node, t)
        except NotImplementedError as err:
            at = _where(model, t, order[i + 1:], layers)
            raise NotImplementedError(f"export_onnx: {at}: op {node.fn.__name__} {err}") from None
    graph.nodes.append(helper.make_node("Identity", [graph.value_names[id(y)]], ["output"],
                                        name="output"))
    _drop_unused_indices(graph.nodes)
    dtype = helper.np_dtype_to_tensor_dtype(np.dtype(x.dtype))
    in_dims, out_dims = ["N", *x.shape[1:]], ["N", *y.shape[1:]]
    if dynamic_size:
        in_dims[2:] = ["H", "W"]
        out_dims[2:] = [None] * (y.ndim - 2)                  # unknown, unless it is H, W
        if y.ndim == 4 and y.shape[2:] == x.shape[2:]:
            out_dims[2:] = ["H", "W"]
    graph_proto = helper.make_graph(
        graph.nodes, getattr(model, "arch", type(model).__name__),
        [helper.make_tensor_value_info("input", dtype, in_dims)],
        [helper.make_tensor_value_info("output", dtype, out_dims)],
        initializer=list(graph.initializers.values()))
    opset_ids = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph_proto, producer_name="minicnn", opset_imports=opset_ids)
    proto.ir_version = helper.find_min_ir_version_for(opset_ids)   # onnx's table: 17 -> 8
    meta = metadata_strings(model) if metadata is None else metadata
    helper.set_model_props(proto, dict(meta))
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return proto
