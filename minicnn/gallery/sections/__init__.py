"""The gallery's sections, in the order of the lectures: each takes the gallery's context and
returns the figures it wants (``gallery.Figure``: a builder and its caption).

One module per part of the course — ``representations`` (filters → PCA/t-SNE),
``sensitivity`` (occlusion, saliency maps), ``attribution`` (deconvnet → Grad-CAM), ``optimization`` (class visualization → style
transfer), ``adversarial`` (adversarial examples, robustness), ``segmentation`` — each
registering its sections with ``@section`` (``_common.py``); importing them in this order
fills ``SECTIONS`` in lecture order.

A section imports its technique module inside the function, so a missing module
skips that section only; ``ctx.small`` / ``ctx.photo`` raise ``Skip`` when that model is
not available, which skips the figure (or, at the top of a section, the section).
``ctx.pick(quick, full)`` chooses the sizes and iteration counts of ``--quick``.
"""
from ._common import SECTIONS, section  # noqa: F401
# imported for their @section registrations, which fill SECTIONS in this order
from . import (representations, sensitivity, attribution, optimization,  # noqa: F401
               adversarial, segmentation)
