"""``Parameter`` and ``Module``: the bookkeeping every layer and model shares.

A Module is a plain Python object. Its attributes that are ``Parameter`` s,
``Module`` s or registered buffers (plain arrays such as BatchNorm's running
mean) are found by looking at the attributes in the order they were set, so
the names come out exactly as in PyTorch::

    model.features[0].weight        ->  "features.0.weight"   (state_dict key)
    model.layer_names()             ->  ["features", "features.0", ...]

There is no ``__setattr__`` magic and no registry: ``vars(module)`` is the
registry. Buffers are the only thing that has to be declared
(``register_buffer``), because a plain array attribute could be anything.
"""
import difflib
from collections import OrderedDict, namedtuple

import numpy as np

from ..autograd import Tensor
from ..backend import as_backend, available_backends, backend_name, default_backend, to_numpy

__all__ = ["Parameter", "Module", "StateDictError", "UnknownLayerError", "LoadResult"]


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates (requires_grad=True)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


class _KeyErrorWithMessage(KeyError):
    """A KeyError whose message prints as written (KeyError would quote it)."""

    def __str__(self):
        return str(self.args[0])


class UnknownLayerError(_KeyErrorWithMessage):
    """A layer name that is not in ``model.layer_names()`` (the message lists them)."""


class StateDictError(_KeyErrorWithMessage):
    """Missing or unexpected keys in ``load_state_dict``."""


LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


def _host_array(value):
    """A NumPy array from a minicnn Tensor, any backend array, or a torch tensor (duck-typed)."""
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "detach") and hasattr(value, "cpu"):      # a torch.Tensor; torch not imported
        value = value.detach().cpu().numpy()
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return to_numpy(value)
    return np.asarray(value)


def _move(array, backend=None, dtype=None):
    """``array`` on ``backend`` with ``dtype`` (both optional); the same object if nothing changes."""
    if backend is not None and backend_name(array) != backend:
        array = as_backend(to_numpy(array), backend)
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return array


def _checked_value(name, value, current):
    """``value`` as a new array of ``current``'s dtype and backend, or a ValueError naming
    ``name``: wrong shape, a kind of number that does not fit, NaN or infinity."""
    value = _host_array(value)
    if tuple(value.shape) != tuple(current.shape):
        raise ValueError(f"load_state_dict: {name!r} has shape {tuple(value.shape)} in the "
                         f"state dict but {tuple(current.shape)} in the model")
    want = np.dtype(current.dtype)
    fits = (value.dtype.kind == "f" if want.kind == "f" else
            value.dtype.kind in "iub" if want.kind in "iu" else value.dtype == want)
    if not fits:
        raise ValueError(f"load_state_dict: {name!r} holds {value.dtype} values but the model's "
                         f"{name} is {want}; refusing to cast silently (convert it explicitly, "
                         f"e.g. state[{name!r}] = state[{name!r}].astype('{want}'), if that is meant)")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        bad = int(value.size - np.isfinite(value).sum())
        raise ValueError(f"load_state_dict: {name!r} holds {bad} NaN or infinite value(s) "
                         f"out of {value.size}; these weights are broken")
    return _move(value.astype(current.dtype, copy=True), backend_name(current))


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, then set Parameters, sub-Modules
    and buffers as attributes, and define ``forward``. ``module(x)`` runs ``forward``
    (and, inside ``capture``, records or replaces its output).
    """

    def __init__(self):
        self.training = True
        self._buffers = []     # names of attributes that are buffers (state, not parameters)
        self._name = None      # full name in the model, filled in on the first call of the root

    # ------------------------------------------------------------------ running
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if "training" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if self._name is None:             # first call of a root: name every layer once
            for name, m in self.named_modules():
                m._name = name
        if self._name == "" and args and (   # the model's input: numbers, not text or lists
                isinstance(args[0], str) or
                (isinstance(args[0], (list, tuple)) and not any(isinstance(a, Tensor) for a in args[0])) or
                (isinstance(args[0], np.ndarray) and args[0].dtype.kind not in "biuf")):
            what = (f"a {type(args[0]).__name__}" if not isinstance(args[0], np.ndarray)
                    else f"an array of {args[0].dtype}")
            raise TypeError(f"{self.label()} takes a Tensor or an array of numbers "
                            f"(N, C, H, W), got {what}; e.g. mc.tensor(np.asarray(x, "
                            f"np.float32)), or model.preprocess.preprocess(images) for pixels")
        try:
            out = self.forward(*args, **kwargs)
        except (ValueError, TypeError) as e:
            # Tell which layer failed, once (the innermost module that saw it).
            if not hasattr(e, "_minicnn_layer") and hasattr(e, "add_note"):
                e._minicnn_layer = self.label()
                e.add_note(f"(raised in layer {e._minicnn_layer})")
            raise
        for entry in self.__dict__.get("_capture", ()):   # set only inside nn.capture(...)
            out = entry(out)
        return out

    def label(self):
        """``Conv2d 'features.3'`` — how error messages name this layer."""
        return f"{type(self).__name__} '{self._name}'" if self._name else type(self).__name__

    # ---------------------------------------------------------------- structure
    def register_buffer(self, name, array):
        """Declare ``array`` (a backend array, e.g. BatchNorm's running mean) as state."""
        if "_buffers" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before register_buffer")
        if name not in self._buffers:
            self._buffers.append(name)
        setattr(self, name, array)

    def named_children(self):
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def children(self):
        return [m for _, m in self.named_children()]

    def named_modules(self, prefix=""):
        """[(name, module)] for this module ("") and every descendant, depth first."""
        out, seen = [], set()

        def walk(module, name):
            if id(module) in seen:
                return
            seen.add(id(module))
            out.append((name, module))
            for child_name, child in module.named_children():
                walk(child, f"{name}.{child_name}" if name else child_name)

        walk(self, prefix)
        return out

    def modules(self):
        return [m for _, m in self.named_modules()]

    def layer_names(self):
        """Names of every submodule: the valid layer targets for capture and techniques."""
        return [name for name, _ in self.named_modules() if name]

    def get_submodule(self, name):
        """The submodule called ``name`` (e.g. ``"features.3"``); a wrong name lists the valid ones."""
        if name == "":
            return self
        module = self
        for part in name.split("."):
            child = vars(module).get(part)
            if not isinstance(child, Module):
                valid = self.layer_names()
                close = difflib.get_close_matches(name, valid, n=3)
                hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                raise UnknownLayerError(f"{type(self).__name__} has no layer {name!r}.{hint} "
                               f"Valid layer names: {', '.join(valid) or '(none)'}")
            module = child
        return module

    def _own_tensors(self):
        """(attribute, value, kind) of this module's own parameters, then buffers (PyTorch's order)."""
        for key, value in vars(self).items():
            if isinstance(value, Parameter):
                yield key, value, "parameter"
        for key, value in vars(self).items():
            if key in self._buffers and value is not None:
                yield key, value, "buffer"

    def _all_tensors(self):
        """(full name, owning module, attribute, kind) for every parameter and buffer."""
        for prefix, module in self.named_modules():
            for key, _, kind in module._own_tensors():
                yield (f"{prefix}.{key}" if prefix else key), module, key, kind

    def named_parameters(self):
        out, seen = [], set()
        for name, module, key, kind in self._all_tensors():
            p = getattr(module, key)
            if kind == "parameter" and id(p) not in seen:
                seen.add(id(p))
                out.append((name, p))
        return out

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        return [(name, getattr(module, key))
                for name, module, key, kind in self._all_tensors() if kind == "buffer"]

    # -------------------------------------------------------------------- state
    def state_dict(self):
        """OrderedDict name -> copy of the backend array, with PyTorch's key names."""
        out = OrderedDict()
        for name, module, key, kind in self._all_tensors():
            value = getattr(module, key)
            out[name] = (value.data if kind == "parameter" else value).copy()
        return out

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` (NumPy or any backend) into parameters and buffers.

        All or nothing: every value is checked first, and only then assigned, so a
        failed load leaves the model exactly as it was. With ``strict`` missing or
        unexpected keys raise ``StateDictError`` listing them. ValueError, naming the
        key, for: a shape that differs from the model's (both shapes given), a kind
        of number that does not fit (integer or complex values for a floating-point
        parameter: convert them explicitly if that is meant), and NaN or infinite
        values. Floating-point values take each parameter's dtype and backend.
        Returns ``LoadResult(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state, "items"):
            raise TypeError(f"load_state_dict expects a dict of name -> array, got {type(state).__name__}")
        bad_keys = [k for k in state if not isinstance(k, str)]
        if bad_keys:
            raise StateDictError(f"load_state_dict into {type(self).__name__}: the key {bad_keys[0]!r:.80} "
                                 f"is a {type(bad_keys[0]).__name__}; keys are strings like 'features.0.weight'")
        targets = OrderedDict((name, (module, key, kind))
                              for name, module, key, kind in self._all_tensors())
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            lines = [f"load_state_dict into {type(self).__name__} failed:"]
            if missing:
                lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
            if unexpected:
                lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
            lines.append("  (pass strict=False to load only the keys that match)")
            raise StateDictError("\n".join(lines))
        ready = []
        for name, (module, key, kind) in targets.items():       # 1. check everything
            if name in state:
                current = getattr(module, key)
                current = current.data if kind == "parameter" else current
                ready.append((module, key, kind, _checked_value(name, state[name], current)))
        for module, key, kind, value in ready:                   # 2. then assign
            if kind == "parameter":
                getattr(module, key).data = value
            else:
                setattr(module, key, value)
        return LoadResult(missing, unexpected)

    # ------------------------------------------------------------ mode, device
    def train(self, mode=True):
        """Training mode (dropout active, BatchNorm uses batch statistics); returns self."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode: dropout off, BatchNorm uses its running statistics; returns self."""
        return self.train(False)

    def to(self, target):
        """Move parameters and buffers to a backend (``"numpy"``, ``"cupy"``, ...) or cast
        floating-point ones to a dtype (``np.float64``); the same Parameter objects are kept."""
        if isinstance(target, str) and target in available_backends():
            backend, dtype = target, None
            as_backend(np.zeros(0), target)            # an unusable backend (no GPU) fails here
        else:
            try:
                dtype = np.dtype(target)
            except TypeError:
                raise ValueError(f"to(): {target!r} is neither a backend "
                                 f"({', '.join(available_backends())}) nor a dtype") from None
            if dtype.kind != "f":
                raise ValueError(f"to(): only floating-point dtypes are supported, got {dtype}")
            backend = None
        for _, module, key, kind in self._all_tensors():
            value = getattr(module, key)
            if kind == "parameter":
                value.data = _move(value.data, backend, dtype)
                if value.grad is not None:
                    value.grad = _move(value.grad, backend, dtype)
            else:
                cast = dtype if value.dtype.kind == "f" else None    # num_batches_tracked stays int
                setattr(module, key, _move(value, backend, cast))
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag=True):
        """Freeze (False) or unfreeze every parameter, e.g. to optimize an input image only."""
        for p in self.parameters():
            p.requires_grad = bool(flag)
        return self

    # -------------------------------------------------------------------- print
    def extra_repr(self):
        """The text inside the parentheses of this layer's repr, e.g. ``3, 64, kernel_size=(3, 3)``."""
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self.named_children()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([extra] if extra else []) + lines
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"


def new_parameter(array, backend=None):
    """A float32 Parameter on ``backend`` (default: the current default backend) from a NumPy array."""
    data = as_backend(np.asarray(array, dtype=np.float32), backend or default_backend())
    return Parameter(data)


def new_buffer(array, backend=None):
    """A backend array (default backend) from a NumPy array, keeping its dtype."""
    return as_backend(np.asarray(array), backend or default_backend())
