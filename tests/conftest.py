"""Shared fixtures: the array backends every op/technique test runs on.

``xp_backend`` is parametrized over "numpy" and "strict" (see strict_backend.py);
"cupy" joins only where a GPU is present (marker ``gpu``).
"""
import os

import numpy as np
import pytest

from tests import strict_backend

strict_backend.register()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")


def _cupy_available():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


BACKENDS = ["numpy", "strict",
            pytest.param("cupy", marks=[pytest.mark.gpu,
                                         pytest.mark.skipif(not _cupy_available(),
                                                            reason="CuPy with a GPU is not available")])]


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    """Name of the backend a test runs on; use minicnn.backend.as_backend(a, backend_name)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_data(*parts):
    """Path inside the shared development data, or skip the test with a reason."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"development data not present: {os.path.join('..', 'shared', 'data', *parts)}")
    return path


def fashion_mnist_or_skip(split="test"):
    """Fashion-MNIST ``split`` (never downloaded), or skip the test saying how to get it."""
    from minicnn.data import FASHION_MNIST_HOW_TO_GET, load_fashion_mnist
    try:
        return load_fashion_mnist(split, download=False)
    except FileNotFoundError:
        pytest.skip(f"the Fashion-MNIST {split} set is not installed ({FASHION_MNIST_HOW_TO_GET})")
