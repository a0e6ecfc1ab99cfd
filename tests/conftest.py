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


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A machine where nothing was fetched: a fresh minicnn home (MINICNN_HOME: imports,
    downloads, training results and logs go there) and no dataset folders searched."""
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MINICNN_DATASET_DIRS", "")
    return tmp_path / "home"


@pytest.fixture
def tiny_training(monkeypatch, home):
    """fashion_net's recipe on 48 random images (32 to train, 16 to test), 2 epochs of 2
    steps: fast and deterministic. Returns the stand-in for the recipe's dataset loader;
    its ``calls`` counts how often training asked it for data."""
    from minicnn import training
    from minicnn.training import recipes

    def tiny_dataset(name, root):
        tiny_dataset.calls += 1
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (48, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, 48)
        return x[:32], y[:32], x[32:], y[32:], [str(i) for i in range(10)], "a tiny test set"
    tiny_dataset.calls = 0
    monkeypatch.setattr(recipes, "_dataset", tiny_dataset)
    monkeypatch.setitem(training.RECIPES, "fashion_net",
                        dict(dataset="fashion_mnist", epochs=2, batch_size=16, lr=1e-3,
                             optimizer="adam", augment={"pad": 2, "flip": True}))
    return tiny_dataset
