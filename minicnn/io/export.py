"""One call to take a model to another engine, the format chosen by the file's extension.

    mc.io.export_model(model, "net.pth")          # PyTorch state_dict + net.pth.json
    mc.io.export_model(model, "net.safetensors")  # metadata in the header
    mc.io.export_model(model, "net.onnx", opset=17)

Every format carries the model's architecture, class labels and preprocessing
(``metadata.py``; ``read_metadata`` reads them back). Everything that can be checked is
checked before anything is written: the format against the extension, the output folder,
the opset.
"""
import os

import numpy as np

from .metadata import metadata_strings, model_metadata, sidecar_path, write_sidecar
from .onnx_export import OPSET, export_onnx
from .paths import check_output_path
from .safetensors import save_safetensors
from .torch_write import save_torch

__all__ = ["export_model", "FORMATS", "format_of"]

FORMATS = {"pth": (".pth", ".pt"), "safetensors": (".safetensors",), "onnx": (".onnx",)}


def format_of(path, format=None):
    """The format to write ``path`` in: ``format`` if given (and the extension, when it is one
    of a known format's, must agree), else the one its extension names."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    named = next((f for f, exts in FORMATS.items() if ext in exts), None)
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; formats: {', '.join(FORMATS)}")
    if format is not None and named is not None and named != format:
        raise ValueError(f"{path}: the extension {ext} says {named} but the format asked is "
                         f"{format}; name the file {os.path.splitext(os.fspath(path))[0]}"
                         f"{FORMATS[format][0]} or drop the format")
    if format is None and named is None:
        known = ", ".join(e for exts in FORMATS.values() for e in exts)
        raise ValueError(f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; "
                         f"use one of {known}, or give the format")
    return format or named


ANY_SIZE_EXAMPLE = (64, 64)    # traced at this size when the model takes any size


def _example(model, size):
    """A zero input (1, C, H, W) and whether H, W stay free in the graph: C from the model's
    preprocessing, H, W from ``size``, else its input size; a model whose preprocessing says
    it takes any size (the encoder-decoders) is traced at ANY_SIZE_EXAMPLE, H, W left free."""
    pre = getattr(model, "preprocess", None)
    channels = pre.channels if pre is not None else 3
    if size is not None:
        return np.zeros((1, channels, *size), np.float32), False
    if pre is not None and pre.input_size:
        return np.zeros((1, channels, *pre.input_size), np.float32), False
    if pre is not None:
        return np.zeros((1, channels, *ANY_SIZE_EXAMPLE), np.float32), True
    raise ValueError(f"{getattr(model, 'arch', type(model).__name__)} does not say its input "
                     f"size; give size=(H, W) (the CLI's --size H W)")


def export_model(model, path, format=None, *, size=None, example_input=None, opset=OPSET,
                 dynamic_size=False):
    """Write ``model`` to ``path`` as .pth, .safetensors or .onnx with its metadata; return
    the list of files written (a .pth has its ``.pth.json`` beside it).

    format: "pth", "safetensors" or "onnx"; by default the extension's, and a format that
        contradicts a known extension is refused (no .pth bytes in a file called .onnx).
    size, example_input: ONNX only, the (H, W) of the exported input (default: the model's
        preprocessing input size) or a whole example (N, C, H, W); ``dynamic_size`` leaves
        H, W free in the graph (fully convolutional nets; see ``export_onnx``). A model whose
        preprocessing takes any size (segnet, segnet_transposed, unet) is exported with H, W
        free unless ``size`` or ``example_input`` is given.
    """
    format = format_of(path, format)
    path = check_output_path(path, f"export ({format})")
    meta = model_metadata(model)
    if format == "pth":
        check_output_path(sidecar_path(path), "export (pth)")
        save_torch(path, model.state_dict())
        return [path, write_sidecar(path, meta)]
    if format == "safetensors":
        save_safetensors(path, model.state_dict(), metadata=metadata_strings(meta))
        return [path]
    if example_input is None:
        example_input, any_size = _example(model, size)
        dynamic_size = dynamic_size or any_size
    export_onnx(model, example_input, path, opset=opset, metadata=metadata_strings(meta),
                dynamic_size=dynamic_size)
    return [path]
