"""The gallery, `minicnn demo`: core.py (figures, context, build_gallery), html.py (the page),
sections/ (one module per lecture family, each returning its figures)."""
from .core import (SECTION_NAMES, Context, Figure, GalleryError, GalleryResult, Skip,  # noqa: F401
                   build_gallery)
