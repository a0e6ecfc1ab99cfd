"""Figures with matplotlib (Agg backend; nothing is shown, figures are returned or saved).

``core``: image grids, heatmap overlays, atomic saving. Technique families add
their own figure modules next to it.
"""
from .core import *  # noqa: F401,F403
