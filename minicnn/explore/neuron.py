"""One unit's arithmetic, as CNN Explainer shows it: how the number in a map is computed.

    ex = Explorer(mc.models.fashion_net(pretrained=True), "fashion_net")
    arithmetic(ex.model, inp.x, "features.3", unit=5, i=10, j=7)

A conv unit y[f, i, j]: its window of the layer's input, the kernel w[f] per input channel,
the element-wise products, their per-channel sums, the bias and the total; the value after
the ReLU that follows. A max-pool unit: its window and which input won (the switch the
deconvnet rule routes its gradient through). A linear unit: its inputs' largest products
w·x, the bias and the total. Each answer carries the value the engine computed in the same
forward pass (``engine``), so a test and the page can check that the arithmetic is the
engine's, and names the function that computes it and its formula.

The layer's input is the output of the layer called just before it (a chain of layers, as in
the small nets and the first layers of a deep one); where that is not the input (a residual
block's sum), the arithmetic and the engine differ and the answer says so (``matches``).
"""
import numpy as np

from .. import nn
from ..autograd import no_grad
from ..backend import to_numpy
from ..nn import capture
from ..techniques.common import as_input

__all__ = ["arithmetic", "backward_arithmetic", "layer_input", "MAX_CHANNELS"]

MAX_CHANNELS = 16        # input channels drawn in full (all of them are summed)
TOP_INPUTS = 12          # a linear unit's inputs listed (by |w·x|)

CODE = {
    "conv": ("ops/conv.py: conv2d_naive",
             "y[f, i, j] = Σ_c Σ_u Σ_v x[c, i·s + u, j·s + v] · w[f, c, u, v] + b[f]"),
    "relu": ("ops/activation.py: ReLU.forward", "relu(y) = max(y, 0)"),
    "pool": ("ops/pool.py: max_pool2d_naive",
             "y[c, i, j] = max over the k×k window of x[c] at (i·s, j·s); the switch is where"),
    "linear": ("ops/basic.py: linear", "y[k] = Σ_d W[k, d] · x[d] + b[k]"),
    "rule": ("autograd.py: the ReLU backward rules",
             "standard: g·(y>0) · deconvnet: g·(g>0) · guided: g·(y>0)·(g>0)"),
    "conv_back": ("ops/conv.py: Conv2d.backward (the transposed convolution)",
                  "∂L/∂x[c, i·s + u, j·s + v] += ∂L/∂y[f, i, j] · w[f, c, u, v]"),
}


def _leaves(model):
    return [n for n in model.layer_names() if not model.get_submodule(n).children()]


def layer_input(model, x, layer):
    """(the array ``layer`` received, its output, the next layer's name and output): the
    input is the output of the leaf called just before it (x itself for the first)."""
    leaves = _leaves(model)
    with no_grad(), capture(model, leaves) as acts:
        model(as_input(model, x[None]))
    order = list(acts)                         # insertion order: the order of the calls
    k = order.index(layer)
    inp = x if k == 0 else to_numpy(acts[order[k - 1]].data[0])
    nxt = order[k + 1] if k + 1 < len(order) else None
    return (np.asarray(inp, np.float64), np.asarray(to_numpy(acts[layer].data[0]), np.float64),
            nxt, None if nxt is None else np.asarray(to_numpy(acts[nxt].data[0]), np.float64))


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def arithmetic(model, x, layer, unit, i=0, j=0):
    """The arithmetic of ``layer``'s unit (channel ``unit`` at row i, column j) on input x
    (C, H, W) -> a dict of plain numbers and lists (JSON-ready)."""
    m = model.get_submodule(layer)
    inp, out, nxt, nxt_out = layer_input(model, x, layer)
    if isinstance(m, nn.Conv2d):
        return _conv(m, inp, out, nxt, nxt_out, model, unit, i, j)
    if isinstance(m, nn.MaxPool2d):
        return _pool(m, inp, out, unit, i, j)
    if isinstance(m, nn.Linear):
        return _linear(m, inp.reshape(-1), out, unit)
    raise ValueError(f"layer {layer!r} is a {type(m).__name__}: the arithmetic is shown for "
                     f"Conv2d, MaxPool2d and Linear layers")


def _check_pos(out, unit, i, j, layer):
    C, H, W = out.shape
    if not (0 <= unit < C and 0 <= i < H and 0 <= j < W):
        raise ValueError(f"position (unit {unit}, i {i}, j {j}) is outside {layer}'s output "
                         f"of shape {C}×{H}×{W}")


def _conv(m, inp, out, nxt, nxt_out, model, f, i, j):
    _check_pos(out, f, i, j, m.label())
    w = np.asarray(to_numpy(m.weight.data), np.float64)
    b = 0.0 if m.bias is None else float(to_numpy(m.bias.data)[f])
    (sh, sw), (ph, pw), (kh, kw) = m.stride, m.padding, m.kernel_size
    F, Cg = w.shape[:2]
    c0 = (f // (F // m.groups)) * Cg                  # first input channel of f's group
    xpad = np.pad(inp, ((0, 0), (ph, ph), (pw, pw)))
    window = xpad[c0:c0 + Cg, i * sh:i * sh + kh, j * sw:j * sw + kw]
    products = window * w[f]
    sums = products.sum(axis=(1, 2))
    total = float(sums.sum() + b)
    engine = float(out[f, i, j])
    shown = min(Cg, MAX_CHANNELS)
    res = {"kind": "conv", "layer": m._name, "unit": f, "i": i, "j": j,
           "code": CODE["conv"][0], "formula": CODE["conv"][1],
           "stride": [sh, sw], "padding": [ph, pw], "kernel": [kh, kw],
           "channels": [c0 + c for c in range(shown)], "in_channels": int(Cg),
           # the window's top-left corner in the (unpadded) input: negative inside the padding
           "origin": [i * sh - ph, j * sw - pw],
           "windows": window[:shown].tolist(), "weights": w[f, :shown].tolist(),
           "products": products[:shown].tolist(), "channel_sums": sums.tolist(),
           "bias": b, "total": total, "engine": engine,
           "matches": bool(abs(total - engine) <= 1e-4 * max(1.0, abs(engine)))}
    if nxt is not None and isinstance(model.get_submodule(nxt), nn.ReLU):
        res["relu"] = {"layer": nxt, "value": float(nxt_out[f, i, j]), "code": CODE["relu"][0],
                       "formula": CODE["relu"][1]}
    return res


def _pool(m, inp, out, c, i, j):
    _check_pos(out, c, i, j, m.label())
    k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    H, W = inp.shape[1:]
    r0, q0 = i * s[0] - p[0], j * s[1] - p[1]
    rows = range(max(r0, 0), min(r0 + k[0], H))
    cols = range(max(q0, 0), min(q0 + k[1], W))
    window = inp[c][np.ix_(list(rows), list(cols))]
    a = int(np.argmax(window))                          # the first maximum, as the op picks
    wr, wc = divmod(a, window.shape[1])
    row, col = rows[wr], cols[wc]
    engine = float(out[c, i, j])
    return {"kind": "pool", "layer": m._name, "unit": c, "i": i, "j": j,
            "code": CODE["pool"][0], "formula": CODE["pool"][1],
            "origin": [rows[0], cols[0]], "window": window.tolist(),
            "winner": [int(row), int(col)], "switch": int(row * W + col),
            "total": float(window.max()), "engine": engine,
            "matches": bool(float(window.max()) == engine)}


def _linear(m, inp, out, k):
    if not 0 <= k < out.shape[0]:
        raise ValueError(f"unit {k} is outside {m.label()}'s {out.shape[0]} outputs")
    w = np.asarray(to_numpy(m.weight.data), np.float64)[k]
    b = 0.0 if m.bias is None else float(to_numpy(m.bias.data)[k])
    products = w * inp
    top = np.argsort(-np.abs(products), kind="stable")[:TOP_INPUTS]
    total = float(products.sum() + b)
    engine = float(out[k])
    return {"kind": "linear", "layer": m._name, "unit": k, "code": CODE["linear"][0],
            "formula": CODE["linear"][1], "inputs": int(inp.size),
            "top": [{"d": int(d), "x": float(inp[d]), "w": float(w[d]),
                     "product": float(products[d])} for d in top],
            "rest": float(products.sum() - products[top].sum()), "bias": b, "total": total,
            "engine": engine, "matches": bool(abs(total - engine) <= 1e-4 * max(1.0, abs(engine)))}


def backward_arithmetic(model, x, layer, unit, i, j, target, rule="standard"):
    """The backward pass at conv unit (unit, i, j) of ``layer`` for the score of class
    ``target`` under a ReLU ``rule``: the gradient arriving at the ReLU after the unit, what
    the rule lets through to the conv's output, and this unit's share of the gradient sent
    to each position of its input window (g · w[f], the transposed convolution)."""
    from ..techniques.common import frozen
    from ..techniques.gradients import backward_from_target
    m = model.get_submodule(layer)
    if not isinstance(m, nn.Conv2d):
        raise ValueError(f"layer {layer!r} is a {type(m).__name__}: the backward view is shown "
                         f"for Conv2d layers")
    fwd = arithmetic(model, x, layer, unit, i, j)
    if "relu" not in fwd:
        raise ValueError(f"layer {layer!r} is not followed by a ReLU")
    relu = fwd["relu"]["layer"]
    with frozen(model, eval_mode=False), capture(model, [layer, relu]) as acts:
        logits = model(as_input(model, x[None], requires_grad=True))
        backward_from_target(logits, target, relu_rule=rule)
    g_in, g_out = acts[relu].grad, acts[layer].grad       # at the ReLU's output, the conv's
    g = 0.0 if g_in is None else float(to_numpy(g_in)[0, unit, i, j])
    through = 0.0 if g_out is None else float(to_numpy(g_out)[0, unit, i, j])
    y = fwd["total"]
    passes = {"standard": y > 0, "deconvnet": g > 0, "guided": y > 0 and g > 0}[rule]
    weights = np.asarray(fwd["weights"])
    return {"layer": layer, "unit": unit, "i": i, "j": j, "rule": rule, "target": int(target),
            "relu": relu, "y": y, "g": g, "y_positive": bool(y > 0), "g_positive": bool(g > 0),
            "passes": bool(passes), "through": through,
            "code_rule": CODE["rule"][0], "formula_rule": CODE["rule"][1],
            "code": CODE["conv_back"][0], "formula": CODE["conv_back"][1],
            "channels": fwd["channels"], "origin": fwd["origin"],
            "to_input": (through * weights).tolist()}
