"""Datasets, images and preprocessing.

    datasets.py   IDX reader, (Fashion-)MNIST, ImageNet labels, mini-batch indices
    cifar.py      CIFAR-10 from any of its published forms
    images.py     loading, resizing, cropping; Preprocess (mean/std/scale, exact inverse)
    samples.py    the shipped sample images
    segdata.py    synthetic segmentation canvases from Fashion-MNIST items
    _fetch.py     the cache folder and downloads the datasets share

``from minicnn.data import load_fashion_mnist, Preprocess, ...`` reaches the names below.
"""
from .datasets import *  # noqa: F401,F403
from .datasets import __all__  # noqa: F401
