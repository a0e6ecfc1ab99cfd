"""Weights in and out: minicnn's .npz + manifest, PyTorch checkpoints, safetensors, ONNX, downloads.

Pure NumPy: reading or writing a ``.pth`` needs no torch and never runs code from the file.

    state = mc.io.load_torch("squeezenet1_1-b8a52dc0.pth")      # {name: np.ndarray}
    state = mc.io.load_safetensors("model.safetensors")
    mc.io.save_npz("weights/net.npz", state, {"architecture": "cifar_net", ...})
    state, meta = mc.io.load_npz("weights/net.npz", expected_arch="cifar_net")
    path = mc.io.fetch("https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth")

Taking a model to other engines (``minicnn export`` does the same from the shell):

    mc.io.export_model(model, "net.onnx")      # format by extension, labels and preprocessing in it

    mc.io.save_torch("net.pth", model.state_dict())             # PyTorch loads it weights-only
    mc.io.save_safetensors("net.safetensors", model.state_dict())
    mc.io.export_onnx(model, example_input, "net.onnx")         # needs the onnx package
    meta = mc.io.read_metadata("net.onnx")     # architecture, labels, preprocessing of an export
"""
from .torch_pickle import load_torch
from .torch_write import save_torch
from .safetensors import load_safetensors, save_safetensors
from .npz import load_npz, save_npz
from .download import fetch, cache_dir, sha256_file
from .onnx_export import export_onnx
from .metadata import read_metadata
from .export import export_model

__all__ = ["load_torch", "save_torch", "load_safetensors", "save_safetensors", "load_npz",
           "save_npz", "export_onnx", "export_model", "read_metadata", "fetch", "cache_dir", "sha256_file"]
