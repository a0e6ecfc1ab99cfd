"""Training: one loop for every model (loop.py), segmentation scores (segmentation.py), and
the recipes that made the shipped weights (recipes.py, the only part naming shipped models).

    from minicnn.training import fit, evaluate, predict
    from minicnn.training.recipes import train_recipe
"""
from .loop import (TrainingDiverged, TrainingInterrupted, check_epochs, check_lr,  # noqa: F401
                   evaluate, fit, predict, run_epochs)
from .segmentation import (confusion_matrix, evaluate_segmentation,  # noqa: F401
                           fit_segmentation, predict_masks, segmentation_scores)

_RECIPE_NAMES = {"RECIPES", "SEG_RECIPES", "train_recipe", "train_segmentation_recipe",
                 "NotReplaced", "prepare_output", "save_result", "default_out_dir"}


def __getattr__(name):
    # The recipes name shipped models: loaded on first use, so the loop stays model-free.
    if name in _RECIPE_NAMES:
        from . import recipes
        return getattr(recipes, name)
    raise AttributeError(f"module 'minicnn.training' has no attribute {name!r}")
