"""``capture``: read (or replace) layer outputs by name — the one mechanism techniques use."""
import contextlib

from ..autograd import Tensor
from .module import Module

__all__ = ["capture", "forward_to", "Activations"]


class Activations(dict):
    """name -> captured output Tensor; a name the forward never reached says so."""

    def __missing__(self, name):
        raise KeyError(f"layer {name!r} produced no output in this capture: the forward did not "
                       f"reach it (captured so far: {', '.join(self) or 'nothing'})")


class _StopForward(Exception):
    """Raised after the last captured layer when stop=True; caught by its own capture."""

    def __init__(self, owner):
        super().__init__("forward stopped by capture(stop=True)")
        self.owner = owner


class _Entry:
    """What one capture asks of one module: record its output (after an optional replace)."""

    def __init__(self, name, acts, modify, stop_after):
        self.name, self.acts, self.modify, self.stop_after = name, acts, modify, stop_after

    def __call__(self, out):
        rest = ()
        if isinstance(out, tuple):            # MaxPool2d(return_indices=True): (output, indices)
            out, *rest = out
        if self.modify is not None:
            new = self.modify(out)
            if not isinstance(new, Tensor) or new.shape != out.shape:
                got = new.shape if isinstance(new, Tensor) else type(new).__name__
                raise ValueError(f"capture: modify[{self.name!r}] must return a Tensor of shape "
                                 f"{out.shape}, got {got}")
            out = new
        self.acts[self.name] = out.retain_grad()
        if self.stop_after is not None and self.stop_after.issubset(self.acts):
            raise _StopForward(self.acts)
        return (out, *rest) if rest else out


@contextlib.contextmanager
def capture(model, names, modify=None, stop=False):
    """Record the outputs of named layers during a forward pass (and their gradients after backward).

    model:  a Module; names: a layer name or a list of them, as ``model.layer_names()`` lists.
    modify: optional {name: fn}; the layer's output t is replaced by fn(t) (same shape) before
            the rest of the network sees it — e.g. keep one feature map, or inject a given code.
    stop:   if True, the forward stops as soon as every named layer has produced its output
            (the rest of the network is not run; statements after ``model(x)`` inside the
            block are skipped, use ``acts`` after the block).

    Yields ``acts``: ``acts[name]`` is the Tensor that layer output (after ``modify``), with
    ``retain_grad()`` set, so after ``out.backward(...)`` its ``.grad`` holds d out / d acts[name].
    A layer called several times in one forward (a shared ReLU) keeps its last output.
    Nothing outlives the block: each captured module gets a ``_capture`` slot that
    ``Module.__call__`` reads and that is removed in ``finally``, even on an exception.

    Example (Grad-CAM's ingredients)::

        with mc.capture(model, ["features.28"]) as acts:
            scores = model(x)
        scores[0, target].backward()
        a, g = acts["features.28"], acts["features.28"].grad    # (1, 512, 14, 14) each

        with mc.capture(model, "features.3", stop=True) as acts:    # run only up to features.3
            model(x)
        feats = acts["features.3"]
    """
    if not isinstance(model, Module):
        raise TypeError(f"capture: model must be an nn.Module, got {type(model).__name__}")
    names = [names] if isinstance(names, str) else list(names)
    modify = dict(modify or {})
    names += [n for n in modify if n not in names]
    if not names:
        raise ValueError("capture: give at least one layer name; valid names: "
                         + ", ".join(model.layer_names()))
    modules = [model.get_submodule(n) for n in names]      # a wrong name lists the valid ones
    acts = Activations()
    stop_after = set(names) if stop else None
    entries = [(m, _Entry(n, acts, modify.get(n), stop_after)) for n, m in zip(names, modules)]
    try:
        for m, entry in entries:
            m.__dict__["_capture"] = m.__dict__.get("_capture", ()) + (entry,)
        yield acts
    except _StopForward as e:
        if e.owner is not acts:        # another (outer) capture's stop: not ours to swallow
            raise
    finally:
        for m, entry in entries:
            kept = tuple(e for e in m.__dict__.get("_capture", ()) if e is not entry)
            if kept:
                m.__dict__["_capture"] = kept
            else:
                m.__dict__.pop("_capture", None)


def forward_to(model, x, name):
    """The output of layer ``name`` for input ``x``, running the model only that far."""
    with capture(model, [name], stop=True) as acts:
        model(x)
    return acts[name]
