"""Weights in and out: minicnn's .npz + manifest, PyTorch checkpoints, safetensors, downloads.

Pure NumPy: reading a ``.pth`` needs no torch and never runs code from the file.

    state = mc.io.load_torch("squeezenet1_1-b8a52dc0.pth")      # {name: np.ndarray}
    state = mc.io.load_safetensors("model.safetensors")
    mc.io.save_npz("weights/net.npz", state, {"architecture": "cifar_net", ...})
    state, meta = mc.io.load_npz("weights/net.npz", expected_arch="cifar_net")
    path = mc.io.fetch("https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth")
"""
from .torch_pickle import load_torch
from .safetensors import load_safetensors, save_safetensors
from .npz import load_npz, save_npz
from .download import fetch, cache_dir, sha256_file

__all__ = ["load_torch", "load_safetensors", "save_safetensors", "load_npz", "save_npz",
           "fetch", "cache_dir", "sha256_file"]
