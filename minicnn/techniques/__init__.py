"""Visualization and analysis techniques: plain functions over (model, image, target, layer).

One module per technique family; every function takes the model and its inputs
and returns arrays. Plotting lives in ``minicnn.plot``.
"""
from .common import as_input, check_target, unit_score  # noqa: F401
