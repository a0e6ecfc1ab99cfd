"""The shipped sample inputs are the Fashion-MNIST test images they claim to be."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.data import samples


def test_one_sample_per_class_28x28():
    got = samples.fashion_samples()
    assert [label for _, label in got] == list(range(10))
    assert all(img.shape == (28, 28) and img.dtype == np.uint8 for img, _ in got)


def test_samples_equal_the_first_test_image_of_each_class():
    try:
        images, labels = mc.data.load_fashion_mnist("test", download=False)
    except (FileNotFoundError, OSError) as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    for img, k in samples.fashion_samples():
        np.testing.assert_array_equal(img, images[np.flatnonzero(labels == k)[0]])


def test_photo_samples_come_from_installed_packages():
    for path in samples.photo_samples():
        assert path.is_file() and "weights" not in path.parts
