"""Benchmarks, PyTorch twins for parity, opcheck: never imported by the engine.

    core.py             the timing table (``run``) and its op sections
    adversarial.py, attribution.py, embedding.py, models.py, optimization.py: more sections
    reference_torch.py  PyTorch twins of the techniques (parity tests, benchmarks)
    opcheck.py          every op's gradient check in one table (``minicnn gradcheck``)
    before_after.py     this checkout's rows timed against another checkout's, alternately
"""
from .core import SECTIONS, compare, run, section  # noqa: F401
