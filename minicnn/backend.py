"""Array backends: NumPy (default) and CuPy (optional, imported lazily).

Arrays carry their backend. Every op asks ``xp = get_array_module(a)`` and
then uses ``xp.zeros``, ``xp.maximum``, ... so the same code runs on NumPy
and on CuPy, whichever the inputs live on. There is no module-level ``xp``.

    xp = get_array_module(x)        # numpy, or cupy for cupy arrays
    as_backend(a, "cupy")           # copy an array to a backend by name
    like(a, ref)                    # a on ref's backend (where ref lives, a goes)
    to_numpy(a)                     # the single exit to plotting / PIL

Other array types can be registered (the test-suite registers a "strict"
NumPy subclass that refuses to mix with plain NumPy arrays, the way CuPy
does, so a stray ``np.zeros`` in device code fails a test).
"""
import contextlib
import contextvars

import numpy as np

__all__ = ["get_array_module", "as_backend", "like", "to_numpy", "backend_name",
           "use", "default_backend", "register_backend", "available_backends",
           "keep_freed_memory"]


class _Backend:
    """A named array module plus how to recognise and make its arrays."""

    def __init__(self, name, load, is_array, from_numpy, to_numpy):
        self.name, self._load = name, load
        self.is_array, self.from_numpy, self.to_numpy = is_array, from_numpy, to_numpy
        self._module = None

    @property
    def module(self):
        if self._module is None:
            self._module = self._load()
        return self._module


def _load_cupy():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()   # raises without a driver / GPU
    except Exception as e:  # ImportError, CUDARuntimeError, ...
        raise RuntimeError(
            "backend 'cupy' needs the cupy package and a CUDA GPU "
            f"(pip install cupy-cuda12x); it is not usable here: {e}") from None
    return cupy


def _is_cupy_array(a):
    # Never import cupy just to ask: an array can only be cupy if cupy is loaded.
    import sys
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(a, cupy.ndarray)


_BACKENDS = {
    "numpy": _Backend("numpy", lambda: np, lambda a: isinstance(a, (np.ndarray, np.generic)),
                      np.asarray, np.asarray),
    "cupy": _Backend("cupy", _load_cupy, _is_cupy_array,
                     lambda a: _load_cupy().asarray(a), lambda a: a.get()),
}
# Checked first to last; numpy last because subclasses of ndarray may be registered.
_ORDER = ["cupy", "numpy"]

_default = contextvars.ContextVar("minicnn_default_backend", default="numpy")


def register_backend(name, module, array_type, from_numpy, to_numpy):
    """Register an extra array backend (used by the strict test backend)."""
    _BACKENDS[name] = _Backend(name, lambda: module, lambda a: isinstance(a, array_type),
                               from_numpy, to_numpy)
    if name not in _ORDER:
        _ORDER.insert(0, name)


def available_backends():
    return list(_BACKENDS)


def _backend_of(a):
    data = getattr(a, "data", a) if _is_tensor(a) else a
    for name in _ORDER:
        if _BACKENDS[name].is_array(data):
            return _BACKENDS[name]
    return _BACKENDS["numpy"]


def _is_tensor(a):
    return type(a).__name__ == "Tensor" and hasattr(a, "requires_grad")


def get_array_module(*arrays):
    """The array module (numpy, cupy, ...) of the first array-like argument."""
    for a in arrays:
        if a is not None and not isinstance(a, (int, float, bool)):
            return _backend_of(a).module
    return np


def backend_name(a):
    """'numpy', 'cupy', ... for an array or Tensor."""
    return _backend_of(a).name


def _get(name):
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {sorted(_BACKENDS)}")
    return _BACKENDS[name]


def as_backend(a, name):
    """Return array ``a`` on backend ``name`` (no copy if it is already there)."""
    target = _get(name)
    if _backend_of(a).name == name:
        return a
    return target.from_numpy(to_numpy(a))


def like(a, ref):
    """Array ``a`` on the backend of ``ref`` (an array or Tensor); no copy if it is there.

    The one way to bring host data (masks, labels, random draws) to where the arrays it
    meets live: ``like(rng.random(x.shape) < p, x)``.
    """
    return as_backend(a, backend_name(ref))


def to_numpy(a):
    """A plain NumPy array from a Tensor or any backend array (the one exit to plotting)."""
    if _is_tensor(a):
        a = a.data
    if isinstance(a, (int, float)):
        return np.asarray(a)
    return _backend_of(a).to_numpy(a)


def default_backend():
    """The backend used for arrays created from Python data or NumPy (see ``use``)."""
    return _default.get()


@contextlib.contextmanager
def _reset_on_exit(token):
    try:
        yield
    finally:
        _default.reset(token)


def use(name):
    """Make ``name`` the default backend for new tensors and models.

    ``mc.use("cupy")`` sets it; ``with mc.use("cupy"): ...`` sets it for a block.
    Asking for CuPy without CuPy or a GPU raises one clear error here.
    """
    _get(name).module  # load now so a missing GPU fails here, not later
    return _reset_on_exit(_default.set(name))


def keep_freed_memory():
    """Let this process reuse the memory of freed NumPy arrays instead of handing it back.

    A training step makes and frees arrays of the same sizes layer after layer, step after
    step. By default glibc's malloc hands freed memory back to the system: blocks over a
    threshold get their own mmap, and the heap is trimmed whenever its free top grows past
    a limit, so the next array of that size starts on fresh pages, and the system
    zero-fills every 4 kB page on its first write. How often that happens depends on
    what else the process holds: a fashion_net training step took 75-85 ms in a process
    that also kept 100 MB of other arrays (PyTorch's, in the bench), 58-62 ms with this,
    as alone (its matrix products take 32 ms). This keeps the memory: arrays up to 32 MB (the
    largest threshold glibc takes) come from the heap, and the heap is never trimmed, so
    the process keeps its peak memory until it ends. Larger arrays still get their own
    mmap, where NumPy asks for huge pages.

    ``minicnn``'s commands call it. In a script of your own, call it once at the start.
    A no-op where the C library is not glibc; returns whether it took effect.
    """
    import ctypes
    import ctypes.util
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):            # not glibc (macOS, Windows, musl without it)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3    # glibc's malloc.h
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 1 << 30))
