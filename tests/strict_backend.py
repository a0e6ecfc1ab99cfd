"""A strict NumPy backend for tests: arrays that refuse to mix with plain NumPy arrays.

CuPy raises when a cupy array meets a numpy array. Without a GPU we still
want that check, so ``StrictArray`` (an ndarray subclass) raises TypeError
whenever a ufunc or array function receives a plain ``numpy.ndarray``
operand. Its array module ``strict`` is NumPy whose functions return
StrictArrays — so ``xp.zeros`` in device code is fine and a stray
``np.zeros`` fails the test that exercises it.
"""
import types

import numpy as np

from minicnn import backend


class MixedBackendError(TypeError):
    pass


def _plain(x):
    return type(x) is np.ndarray


def _unwrap(x):
    if isinstance(x, StrictArray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _wrap(x):
    if type(x) is np.ndarray:
        return x.view(StrictArray)
    if isinstance(x, np.generic):       # like CuPy: reductions give 0-d arrays, not scalars
        return np.asarray(x).view(StrictArray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _refuse_plain(where, values):
    for v in values:
        if _plain(v):
            raise MixedBackendError(
                f"{where}: a plain numpy array (shape {v.shape}) was mixed with a device "
                "(strict) array; create arrays with xp = get_array_module(x)")
        if isinstance(v, (list, tuple)):
            _refuse_plain(where, v)


class StrictArray(np.ndarray):
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_plain(f"{ufunc.__name__}.{method}", inputs + tuple(kwargs.get("out", ())))
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        if np.ndarray in types_:
            _refuse_plain(func.__name__, tuple(args) + tuple(kwargs.values()))
        return _wrap(func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

    def __getitem__(self, key):
        _refuse_plain("indexing", key if isinstance(key, tuple) else (key,))
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        _refuse_plain("item assignment", (key if isinstance(key, tuple) else (key,)) + (value,))
        return super().__setitem__(key, value)


class _StrictModule(types.ModuleType):
    """numpy, except that every function returns StrictArrays."""

    def __init__(self, name, wrapped):
        super().__init__(name)
        self._wrapped = wrapped

    def __getattr__(self, attr):
        value = getattr(self._wrapped, attr)
        if isinstance(value, types.ModuleType):
            return _StrictModule(f"{self.__name__}.{attr}", value)
        if callable(value) and not isinstance(value, type) and not isinstance(value, np.ufunc):
            def call(*args, **kwargs):
                return _wrap(value(*args, **kwargs))
            call.__name__ = getattr(value, "__name__", attr)
            return call
        return value


strict = _StrictModule("strict", np)


def to_strict(a):
    return np.asarray(a).view(StrictArray) if not isinstance(a, StrictArray) else a


def register():
    backend.register_backend("strict", strict, StrictArray, to_strict,
                             lambda a: np.asarray(a.view(np.ndarray)))
