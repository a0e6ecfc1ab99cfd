"""The restricted unpickler behind ``load_torch``: what a checkpoint's pickle may call.

Unpickling runs whatever the pickle names. ``RestrictedUnpickler.find_class``
hands out small stand-ins for the few names a state_dict needs
(``ALLOWED_GLOBALS``, ``torch.*Storage``) and refuses every other name. Each
stand-in accepts only the types and ranges a real checkpoint gives it -- ints
for sizes, a short string for ``torch.device`` -- so no hostile object (a list
whose printing never ends, say) gets past them, and ``unpickle`` bounds how deeply
the result nests (``MAX_NESTING``). The stand-ins only *record* what torch would
build (``TensorRef``: a strided view of a storage); ``torch_pickle`` makes the
arrays afterwards, from bytes it has checked.
"""
import collections
import pickle
import pickletools
import struct
from dataclasses import dataclass

MAX_NESTING = 64       # containers inside containers; a state_dict checkpoint uses fewer than 10
MAX_DIMS = 32          # dimensions of one tensor
MAX_INDEX = 2 ** 62    # sizes, strides and offsets stay below this (no int64 overflow)
MAX_TUPLE_ITEMS = 100_000   # a tuple's items counted with repeats, nested ones included

# torch.<Name>Storage -> NumPy dtype of its elements (bfloat16 travels as raw uint16).
STORAGE_DTYPES = {
    "HalfStorage": "float16", "FloatStorage": "float32", "DoubleStorage": "float64",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "UntypedStorage": "uint8",
}


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """The pickle names a global outside the allow-list; nothing was executed."""


@dataclass(frozen=True, slots=True)
class StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only the element dtype matters."""
    name: str
    dtype: str


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A persistent id, resolved: ``numel`` elements starting ``offset`` elements into storage ``key``."""
    key: str
    dtype: str
    offset: int
    numel: int


@dataclass(frozen=True, slots=True)
class TensorRef:
    """What ``_rebuild_tensor_v2`` would have built, as a recipe: a strided view of a storage."""
    storage: StorageRef
    offset: int
    shape: tuple
    stride: tuple


def brief(obj):
    """A short description of any unpickled value, safe to put in a message: never the
    ``repr`` of a container (a hostile one can take forever to print) nor of a huge int."""
    if isinstance(obj, (str, bytes)):
        return repr(obj[:60]) + ("..." if len(obj) > 60 else "")
    if obj is None or isinstance(obj, (bool, float)):
        return repr(obj)
    if isinstance(obj, int):
        return repr(obj) if obj.bit_length() <= 64 else f"an int of {obj.bit_length()} bits"
    if isinstance(obj, (list, tuple, dict, set, frozenset)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


def _index(value, what):
    """``value`` as a Python int in [0, MAX_INDEX); anything else is refused by name."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_INDEX:
        raise pickle.UnpicklingError(f"{what} must be an integer in [0, 2**62), got {brief(value)}")
    return value


def _dims(values, what):
    """A tuple of at most MAX_DIMS indices (a shape or a stride)."""
    if not isinstance(values, (tuple, list)) or len(values) > MAX_DIMS:
        raise pickle.UnpicklingError(f"{what} must be a tuple of at most {MAX_DIMS} integers, "
                                     f"got {brief(values)}")
    return tuple(_index(v, f"each entry of {what}") for v in values)


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    # rest: requires_grad, backward_hooks, optional metadata -- not needed for weights
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 got {brief(storage)}, expected a storage")
    if len(rest) > 3:
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 got {4 + len(rest)} arguments, expected 6 or 7")
    shape, strides = _dims(size, "a tensor's size"), _dims(stride, "a tensor's stride")
    if len(shape) != len(strides):
        raise pickle.UnpicklingError(f"a tensor's size {shape} and stride {strides} differ in length")
    return TensorRef(storage, _index(storage_offset, "a tensor's storage offset"), shape, strides)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """A Parameter is a tensor with a flag; for weights only the tensor matters."""
    if not isinstance(data, TensorRef):
        raise pickle.UnpicklingError(f"_rebuild_parameter got {brief(data)}, expected a tensor")
    return data


def _ordered_dict(*args):
    """``collections.OrderedDict()``: how torch pickles an (empty) dict of hooks; the items,
    if any, arrive afterwards through the pickle's own SETITEMS."""
    if args:
        raise pickle.UnpicklingError(f"collections.OrderedDict is allowed only without "
                                     f"arguments, got {len(args)}")
    return collections.OrderedDict()


def _size(dims=()):
    """``torch.Size(dims)``: a tuple of at most MAX_DIMS indices."""
    return _dims(dims, "torch.Size")


def _device(kind, index=None):
    """``torch.device("cpu")`` / ``torch.device("cuda", 0)``: only its short name is kept."""
    if not isinstance(kind, str) or len(kind) > 64 or not (index is None or isinstance(index, int)):
        raise pickle.UnpicklingError(f"torch.device is allowed only as device(str[, int]), got "
                                     f"device({brief(kind)}, {brief(index)})")
    return kind if index is None else f"{kind}:{brief(index)}"


def _latin1_encode(text, encoding="latin1"):
    """How protocol-2 pickles spell ``bytes``; the only codec call allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


ALLOWED_GLOBALS = {
    "collections.OrderedDict": _ordered_dict,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch.Size": _size,
    "torch.device": _device,
    "_codecs.encode": _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ALLOWED_GLOBALS and storage types.

    ``storages`` collects, per storage key, ``(dtype, numel)`` from the
    persistent ids met, so the legacy reader knows how many bytes follow.
    """

    def __init__(self, file, path):
        super().__init__(file)
        self.file = file
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        full = f"{module}.{name}"
        if full in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[full]
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(
            f"{self.path}: refusing to load the global '{full}' named in the pickle; only "
            f"tensors and plain containers are read (allowed: {', '.join(sorted(ALLOWED_GLOBALS))}, "
            f"torch.*Storage). If you trust this file, load it with torch and save its "
            f"state_dict() alone.")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise UnsafeCheckpointError(f"{self.path}: unknown persistent id {brief(pid)}")
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise UnsafeCheckpointError(
                f"{self.path}: this file holds a whole pickled nn.Module, not a state_dict; "
                f"load it with torch and save model.state_dict() instead.")
        if kind != "storage" or len(pid) not in (5, 6) or not isinstance(pid[1], StorageType):
            raise UnsafeCheckpointError(f"{self.path}: unknown persistent id "
                                        f"({', '.join(brief(p) for p in pid[:6])})")
        storage_type, key, _location, numel = pid[1:5]
        if isinstance(key, bool) or not isinstance(key, (str, int)) or len(str(key)) > 256:
            raise pickle.UnpicklingError(f"a storage key must be a short string, got {brief(key)}")
        key, numel = str(key), _index(numel, f"the size of storage '{key}'")
        dtype = storage_type.dtype
        if self.storages.setdefault(key, (dtype, numel))[0] != dtype:
            raise ValueError(f"{self.path}: storage '{key}' is used both as "
                             f"{self.storages[key][0]} and as {dtype}")
        view = pid[5] if len(pid) == 6 else None
        if view is not None:  # legacy storage view: (view_key, offset, numel) into `key`
            if not isinstance(view, tuple) or len(view) != 3:
                raise pickle.UnpicklingError(f"storage '{key}': a view must be (key, offset, size), "
                                             f"got {brief(view)}")
            return StorageRef(key, dtype, _index(view[1], f"storage '{key}' view offset"),
                              _index(view[2], f"storage '{key}' view size"))
        return StorageRef(key, dtype, 0, numel)


CONTAINERS = (list, tuple, dict, set, frozenset)


def _check_nesting(obj, path, what):
    """Refuse an unpickled object nested more than MAX_NESTING containers deep, or holding
    itself: printing or comparing such an object may never finish (a list of two copies of
    a list of two copies of ... is 2**depth items to print, from a few hundred bytes)."""
    heights, on_path, stack = {}, set(), [(obj, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, CONTAINERS):
            continue
        key = id(node)
        if finished:
            on_path.discard(key)
            heights[key] = 1 + max((heights.get(id(c), 0) for c in _children(node)), default=0)
            if heights[key] > MAX_NESTING:
                break
            continue
        if key in heights:
            continue
        if key in on_path:
            raise ValueError(f"{path}: {what} holds a container that contains itself; "
                             f"a checkpoint of weights never does (corrupt or hostile file)")
        on_path.add(key)
        if len(on_path) > MAX_NESTING:
            break
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node))
    else:
        return obj
    raise ValueError(f"{path}: {what} nests containers more than {MAX_NESTING} deep; "
                     f"a checkpoint of weights needs fewer than 10 (corrupt or hostile file)")


def _children(node):
    return [x for kv in node.items() for x in kv] if isinstance(node, dict) else node


def _check_tuple_sizes(file, path, what):
    """Read the pickle's opcodes (running nothing) and refuse a tuple that is small in the
    file but huge unfolded. A pickle may reuse an object (its memo), so ``t = (t, t)``
    repeated 28 times is a few hundred bytes and 2**28 items: hashing it as a dict key,
    which the unpickler does while loading, or printing it, would never finish. Each
    stack entry carries its unfolded size; the file is left where it was."""
    start, stack, memo, mark = file.tell(), [], {}, object()

    def pop_to_mark():
        items = []
        while (top := stack.pop()) is not mark:
            items.append(top)
        return items

    def tuple_of(items):
        size = 1 + sum(items)
        if size > MAX_TUPLE_ITEMS:
            raise ValueError(f"{path}: {what} builds a tuple of more than {MAX_TUPLE_ITEMS:,} "
                             f"items once its repeated parts are unfolded; a checkpoint of "
                             f"weights never does, and hashing or printing it would not end "
                             f"(corrupt or hostile file)")
        return size
    try:
        for op, arg, _ in pickletools.genops(file):
            name = op.name
            if name == "STOP":
                break
            if name == "MARK":
                stack.append(mark)
            elif name == "TUPLE":
                stack.append(tuple_of(pop_to_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"):
                n = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3, "EMPTY_TUPLE": 0}[name]
                items = [stack.pop() for _ in range(n)]
                stack.append(tuple_of(items))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg, 1))
            elif name == "DUP":
                stack.append(stack[-1])
            else:                                      # any other opcode: its stack effect
                before = op.stack_before
                if pickletools.markobject in before:
                    pop_to_mark()
                    before = before[:before.index(pickletools.markobject)]
                for _ in before:
                    stack.pop()
                stack.extend(1 for _ in op.stack_after)
    except ValueError as err:
        if str(err).startswith(path):
            raise
    except Exception:                  # noqa: BLE001 — malformed: the unpickler says how
        pass
    finally:
        file.seek(start)


def unpickle(unpickler, what):
    """Run one restricted load; a malformed pickle becomes a ValueError naming the file."""
    _check_tuple_sizes(unpickler.file, unpickler.path, what)
    try:
        obj = unpickler.load()
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, ValueError, OverflowError, MemoryError, RecursionError) as err:
        if isinstance(err, ValueError) and str(err).startswith(unpickler.path):
            raise  # already one of ours
        raise ValueError(f"{unpickler.path}: {what} is not a valid checkpoint pickle "
                         f"(truncated or corrupt?): {type(err).__name__}: {err}") from None
    return _check_nesting(obj, unpickler.path, what)

