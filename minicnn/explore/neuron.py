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
from ..models.efficientnet import Conv2dSame, same_padding
from ..nn import capture
from .render import png_url
from ..techniques.common import as_input

__all__ = ["arithmetic", "backward_arithmetic", "arithmetic_layers", "strongest", "layer_input",
           "MAX_CHANNELS"]

MAX_CHANNELS = 16        # input channels drawn in full (all of them are summed)
INPUT = "the input"      # what the first layer receives
TOP_INPUTS = 12          # a linear unit's inputs listed (by |w·x|)

# Each view names the code computing it — "file: object", importable from minicnn — with the
# formula as that object's docstring (or its class's) writes it, and how it reads at one unit.
CODE = {
    "conv": ("ops/conv.py: Conv2d.forward",
             "y[n, f, i, j] = b[f] + Σ_{c, u, v} w[f, c, u, v] · x_pad[n, c', s·i + u, s·j + v]",
             "at one unit: Σ over the window of x · w, plus b[f] (the loops: ops/conv.py: "
             "conv2d_naive)"),
    "relu": ("ops/activation.py: ReLU.forward", "y = max(x, 0)", ""),
    "relu6": ("ops/activation.py: relu6", "min(max(x, 0), 6)", ""),
    "bn": ("ops/norm.py: BatchNorm.forward",
           "y = x * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mu * scale",
           "eval: mu, var are the running statistics"),
    "pool": ("ops/pool.py: MaxPool2d.forward",
             "out[n, c, oh, ow] = max of the window x[n, c, oh·sh − ph + i, ow·sw − pw + j]",
             "the switch: indices[n, c, oh, ow] = flat position h·W + w of that maximum"),
    "linear": ("ops/basic.py: Linear.forward", "y = x wᵀ + b",
               "at one unit: y[k] = Σ_d w[k, d] · x[d] + b[k]"),
    "standard": ("autograd.py: _standard", "g * (x > 0)", ""),
    "deconvnet": ("autograd.py: _deconvnet", "g * (g > 0)", ""),
    "guided": ("autograd.py: _guided", "g * (x > 0) * (g > 0)", ""),
    "relu_back": ("ops/activation.py: ReLU.backward", "dx = rule(g, x > 0)", ""),
    "relu6_back": ("ops/activation.py: Clamp.backward", "dx = rule(g, lo < x < hi)",
                   "ReLU6 is clamp(x, 0, 6): 'x > 0' reads 0 < x < 6"),
    "pool_back": ("ops/pool.py: MaxPool2d.backward",
                  "dx[n, c].ravel()[indices[n, c, oh, ow]] += g[n, c, oh, ow]",
                  "all of g to the switch, nothing to the rest of the window"),
    "linear_back": ("ops/basic.py: Linear.backward", "dx = g w",
                    "at input d: Σ_k g[k] · w[k, d] (Wᵀg); this unit's part: g[unit] · w[unit, d]"),
    "conv_back": ("ops/conv.py: Conv2d.backward", "dx = col2im(Wᵀ ⋅ g)",
                  "this unit alone: dx[c', s·i + u, s·j + v] += g · w[f, c', u, v] — the "
                  "transposed convolution (the kernel flipped, seen from the input)"),
}


def _code(name):
    """{"code", "formula", "here"} of a CODE entry, for the page."""
    code, formula, here = CODE[name]
    return {"code": code, "formula": formula, "here": here}


def _leaves(model):
    return [n for n in model.layer_names() if not model.get_submodule(n).children()]


def _forward(model, x):
    """Every leaf layer's output for input x (C, H, W), in the order of the calls (float64)."""
    with no_grad(), capture(model, _leaves(model)) as acts:
        model(as_input(model, x[None]))
    return {n: np.asarray(to_numpy(t.data[0]), np.float64) for n, t in acts.items()}


def layer_input(model, x, layer):
    """(the array ``layer`` received, its output, the next layer's name and output): the
    input is the output of the leaf called just before it (x itself for the first)."""
    outs = _forward(model, x)
    order = list(outs)                         # insertion order: the order of the calls
    inp, out = _input_output(outs, x, layer)
    k = order.index(layer)
    nxt = order[k + 1] if k + 1 < len(order) else None
    return inp, out, nxt, None if nxt is None else outs[nxt]


def _after(model, outs, layer):
    """The steps that follow ``layer`` unit by unit: a batch norm (eval) and/or a ReLU or
    ReLU6 -> [(kind, name, output)], kind "bn", "relu" or "relu6"."""
    order = list(outs)
    steps = []
    for name in order[order.index(layer) + 1:]:
        m = model.get_submodule(name)
        if isinstance(m, nn.BatchNorm2d) and not steps and not m.training:
            steps.append(("bn", name, outs[name]))
            continue
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            steps.append(("relu6" if isinstance(m, nn.ReLU6) else "relu", name, outs[name]))
        break
    return steps if not steps or steps[-1][0] != "bn" else []


def _bn_affine(m, c):
    """A batch norm in eval mode at channel c as y·scale + shift (the folded affine map)."""
    mean, var = (float(to_numpy(b.data)[c]) for b in (m.running_mean, m.running_var))
    gamma, beta = float(to_numpy(m.weight.data)[c]), float(to_numpy(m.bias.data)[c])
    scale = gamma / np.sqrt(var + m.eps)
    return {"mean": mean, "var": var, "eps": float(m.eps), "gamma": gamma, "beta": beta,
            "scale": float(scale), "shift": float(beta - mean * scale)}


_KINDS = (nn.Conv2d, nn.MaxPool2d, nn.Linear)


def arithmetic_layers(model, x, layer):
    """The layers whose arithmetic explains ``layer``'s units -> [{"name", "type", "shape"}]:
    the layer itself (a conv, max-pool or linear layer); the convs, pools and linears inside a
    block (EfficientNet's ``_blocks.0``: its depthwise and 1×1 convs); for a batch norm or
    ReLU, the layer whose units it transforms (``_bn0``, ``_stem_relu``: ``_conv_stem``)."""
    outs = _forward(model, x)
    m = model.get_submodule(layer)
    if isinstance(m, _KINDS):
        names = [layer]
    elif m.children():
        names = [n for n in outs if n.startswith(layer + ".")
                 and isinstance(model.get_submodule(n), _KINDS)]
    else:
        names = [n for n in outs if isinstance(model.get_submodule(n), _KINDS)
                 and layer in [name for _, name, _ in _after(model, outs, n)]]
    return [{"name": n, "type": type(model.get_submodule(n)).__name__,
             "shape": list(outs[n].shape)} for n in names]


def strongest(model, x, layer, unit):
    """(i, j) where channel ``unit`` of ``layer`` (any conv or pool) responds most to x."""
    out = _forward(model, x)[layer]
    if out.ndim != 3 or not 0 <= unit < out.shape[0]:
        return 0, 0
    i, j = np.unravel_index(int(np.argmax(out[unit])), out.shape[1:])
    return int(i), int(j)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def arithmetic(model, x, layer, unit, i=0, j=0, pictures=False):
    """The arithmetic of ``layer``'s unit (channel ``unit`` at row i, column j) on input x
    (C, H, W) -> a dict of plain numbers and lists (JSON-ready). ``pictures``: also the
    input maps the window lies on (``maps``: a PNG data URL per channel shown, each scaled
    from its own min (black) to its max (white)), for the page to draw the window on."""
    m = model.get_submodule(layer)
    if not isinstance(m, _KINDS):
        raise ValueError(f"layer {layer!r} is a {type(m).__name__}: the arithmetic is shown "
                         f"for Conv2d, MaxPool2d and Linear layers")
    outs = _forward(model, x)
    inp, out = _input_output(outs, x, layer)
    if isinstance(m, nn.Conv2d):
        res = _conv(m, inp, out, unit, i, j)
    elif isinstance(m, nn.MaxPool2d):
        res = _pool(m, inp, out, unit, i, j)
    else:
        res = _linear(m, inp.reshape(-1), out, unit)
    order = list(outs)
    k = order.index(layer)
    res["input_layer"] = order[k - 1] if k > 0 else INPUT
    res["last"] = k == len(order) - 1
    if pictures and res["kind"] != "linear":
        chans = res["channels"] if res["kind"] == "conv" else [unit]
        res["maps"] = [png_url(_grey(inp[c])) for c in chans]
        res["map_shape"] = list(inp.shape[1:])
    at = (unit, i, j) if out.ndim == 3 else (unit,)
    value = res["total"]                 # the steps after it, from the arithmetic's total
    for kind, name, after in _after(model, outs, layer):
        if kind == "bn":
            bn = _bn_affine(model.get_submodule(name), unit)
            value = value * bn["scale"] + bn["shift"]
            res["bn"] = dict(bn, layer=name, value=value, engine=float(after[at]),
                             **_code("bn"))
        else:
            hi = 6.0 if kind == "relu6" else np.inf
            res["relu"] = {"layer": name, "kind": kind, "value": float(after[at]),
                           "computed": float(min(max(value, 0.0), hi)),
                           **_code(kind)}
    return res


def _grey(m):
    """A map (H, W) -> uint8 grey, its min black and its max white (a flat map: mid-grey)."""
    lo, hi = float(m.min()), float(m.max())
    if hi <= lo:
        return np.full(m.shape, 128, np.uint8)
    return np.round((m - lo) / (hi - lo) * 255).astype(np.uint8)


def _input_output(outs, x, layer):
    """(what ``layer`` received: the previous leaf's output or x, its output)."""
    order = list(outs)
    k = order.index(layer)
    return (np.asarray(x, np.float64) if k == 0 else outs[order[k - 1]]), outs[layer]


def _check_pos(out, unit, i, j, layer):
    C, H, W = out.shape
    if not (0 <= unit < C and 0 <= i < H and 0 <= j < W):
        raise ValueError(f"position (unit {unit}, i {i}, j {j}) is outside {layer}'s output "
                         f"of shape {C}×{H}×{W}")


def _conv_padding(m, inp):
    """(top, bottom, left, right): the layer's own, or TensorFlow SAME's for this input size
    (``Conv2dSame``, whose odd extra row and column go after)."""
    if isinstance(m, Conv2dSame):
        H, W = inp.shape[1:]
        return (*same_padding(H, m.kernel_size[0], m.stride[0]),
                *same_padding(W, m.kernel_size[1], m.stride[1]))
    ph, pw = m.padding
    return ph, ph, pw, pw


def _conv(m, inp, out, f, i, j):
    _check_pos(out, f, i, j, m.label())
    w = np.asarray(to_numpy(m.weight.data), np.float64)
    b = 0.0 if m.bias is None else float(to_numpy(m.bias.data)[f])
    (sh, sw), (kh, kw) = m.stride, m.kernel_size
    top, bottom, left, right = _conv_padding(m, inp)
    F, Cg = w.shape[:2]
    c0 = (f // (F // m.groups)) * Cg                  # first input channel of f's group
    xpad = np.pad(inp, ((0, 0), (top, bottom), (left, right)))
    window = xpad[c0:c0 + Cg, i * sh:i * sh + kh, j * sw:j * sw + kw]
    products = window * w[f]
    sums = products.sum(axis=(1, 2))
    total = float(sums.sum() + b)
    engine = float(out[f, i, j])
    shown = min(Cg, MAX_CHANNELS)
    return {"kind": "conv", "layer": m._name, "unit": f, "i": i, "j": j,
            **_code("conv"),
            "stride": [sh, sw], "padding": [top, left], "padding_after": [bottom, right],
            "same": isinstance(m, Conv2dSame), "kernel": [kh, kw], "groups": int(m.groups),
            "channels": [c0 + c for c in range(shown)], "in_channels": int(Cg),
            "input_shape": list(inp.shape),
            # the window's top-left corner in the (unpadded) input: negative inside the padding
            "origin": [i * sh - top, j * sw - left],
            "windows": window[:shown].tolist(), "weights": w[f, :shown].tolist(),
            "products": products[:shown].tolist(), "channel_sums": sums.tolist(),
            "bias": b, "total": total, "engine": engine,
            "matches": bool(abs(total - engine) <= 1e-4 * max(1.0, abs(engine)))}


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
            **_code("pool"),
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
    return {"kind": "linear", "layer": m._name, "unit": k, **_code("linear"),
            "inputs": int(inp.size),
            "top": [{"d": int(d), "x": float(inp[d]), "w": float(w[d]),
                     "product": float(products[d])} for d in top],
            "rest": float(products.sum() - products[top].sum()), "bias": b, "total": total,
            "engine": engine, "matches": bool(abs(total - engine) <= 1e-4 * max(1.0, abs(engine)))}


def backward_arithmetic(model, x, layer, unit, i, j, target, rule="standard", fwd=None):
    """The backward pass at unit (unit, i, j) of ``layer`` (a linear unit: ``unit``) for the
    score of class ``target`` under a ReLU ``rule``, each number beside the engine's:

    - the gradient ``g`` arriving after the unit (at the ReLU / ReLU6 that follows it, else at
      the unit's own output: for the last layer, 1 at the target class and 0 elsewhere), what
      the rule lets through, times the batch norm's scale where one comes between, and
      ``through``: the gradient at the unit's output;
    - conv: this unit's share of the gradient at each position of its input window,
      through · w[f] (the transposed convolution);
    - max-pool: the switch — the whole gradient goes to the window's winner, nothing to the
      rest (the deconvnet's unpooling uses the same index);
    - linear: the inputs receiving the largest gradient ∂L/∂x[d] = Σ_k W[k, d] · g[k]
      (= Wᵀg) and this unit's part W[unit, d] · through of each.

    ``fwd``: this unit's ``arithmetic`` when the caller has it (one forward pass fewer).
    """
    from ..techniques.common import frozen
    from ..techniques.gradients import backward_from_target
    if fwd is None or (fwd["layer"], fwd["unit"], fwd.get("i", 0), fwd.get("j", 0)) != \
            (layer, unit, i, j):
        fwd = arithmetic(model, x, layer, unit, i, j)
    prev = None if fwd["input_layer"] == INPUT else fwd["input_layer"]
    steps = [s for s in ("bn", "relu") if s in fwd]
    names = ([prev] if prev else []) + [layer] + [fwd[s]["layer"] for s in steps]
    with frozen(model, eval_mode=False), capture(model, names) as acts:
        xt = as_input(model, x[None], requires_grad=True)
        logits = model(xt)
        backward_from_target(logits, target, relu_rule=rule)
    grads = {n: _grad(acts[n]) for n in names}
    grad_in = grads[prev] if prev else _grad(xt)
    at = (unit, i, j) if fwd["kind"] != "linear" else (unit,)
    res = {"layer": layer, "kind": fwd["kind"], "unit": unit, "i": i, "j": j, "rule": rule,
           "target": int(target), "through": float(grads[layer][at]),
           **_code(fwd["kind"] + "_back")}
    if "relu" in fwd:
        relu = fwd["relu"]
        y = fwd["bn"]["value"] if "bn" in fwd else fwd["total"]     # the ReLU's input
        g = float(grads[relu["layer"]][at])
        hi = 6.0 if relu["kind"] == "relu6" else np.inf
        active = bool(0 < y < hi)
        passes = {"standard": active, "deconvnet": g > 0, "guided": active and g > 0}[rule]
        res.update(relu=relu["layer"], relu_kind=relu["kind"], y=y, g=g, y_active=active,
                   g_positive=bool(g > 0), passes=bool(passes),
                   rule_code=_code(rule), relu_code=_code(relu["kind"] + "_back"))
        if "bn" in fwd:
            res["bn"] = {"layer": fwd["bn"]["layer"], "scale": fwd["bn"]["scale"],
                         "through": float(grads[fwd["bn"]["layer"]][at])}
    else:                       # no activation after it: the gradient at its output arrives
        res.update(g=res["through"], last=fwd["last"])
    if fwd["kind"] == "conv":
        weights = np.asarray(fwd["weights"])
        res.update(channels=fwd["channels"], origin=fwd["origin"],
                   to_input=(res["through"] * weights).tolist())
    elif fwd["kind"] == "pool":
        window = np.zeros_like(np.asarray(fwd["window"]))
        r, c = fwd["winner"][0] - fwd["origin"][0], fwd["winner"][1] - fwd["origin"][1]
        window[r, c] = res["through"]
        (r0, q0), (h, w) = fwd["origin"], window.shape
        res.update(origin=fwd["origin"], winner=fwd["winner"], switch=fwd["switch"],
                   to_input=window.tolist(),
                   engine_input=grad_in[unit, r0:r0 + h, q0:q0 + w].tolist())
    else:
        w = np.asarray(to_numpy(model.get_submodule(layer).weight.data), np.float64)
        g_out = grads[layer]                                 # ∂L/∂y for every unit k
        wtg = w.T @ g_out                                    # the gradient at every input
        top = np.argsort(-np.abs(wtg), kind="stable")[:TOP_INPUTS]
        engine = grad_in.reshape(-1)
        res.update(inputs=int(w.shape[1]), g_out_nonzero=int(np.count_nonzero(g_out)),
                   top=[{"d": int(d), "w": float(w[unit, d]),
                         "share": float(w[unit, d] * res["through"]),
                         "total": float(wtg[d]), "engine": float(engine[d])} for d in top])
    return res


def _grad(t):
    """A captured Tensor's gradient as float64 (zeros where no gradient reached it)."""
    g = t.grad
    shape = tuple(t.shape[1:])
    return np.zeros(shape) if g is None else np.asarray(to_numpy(g)[0], np.float64)
