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


def test_every_sample_photo_loads_from_its_package_with_a_credit_and_licence():
    for name, info in samples.SAMPLE_PHOTOS.items():
        img = samples.sample_photo(name, 64)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8, name
        assert info.credit and info.licence in ("CC0", "public domain"), name
        assert "weights" not in samples.sample_photo_path(name).parts


def test_object_boxes_lie_inside_the_framed_photo_and_scale_with_its_size():
    for name, info in samples.SAMPLE_PHOTOS.items():
        if info.box is None:
            continue
        t, l, b, r = samples.photo_box(name, 224)
        assert 0 <= t < b <= 224 and 0 <= l < r <= 224, name
        t2, l2, b2, r2 = samples.photo_box(name, 112)
        assert abs(2 * t2 - t) <= 2 and abs(2 * r2 - r) <= 2, name


def test_the_composite_puts_each_object_in_its_own_half():
    pixels, boxes = samples.two_object_composite(224)
    assert pixels.shape == (224, 224, 3)
    (t, l, b, r), (t2, l2, b2, r2) = boxes["chelsea"], boxes["coffee"]
    assert r <= 112 <= l2
    np.testing.assert_array_equal(pixels[t2:b2, l2:r2],
                                  samples.sample_photo("coffee", 112)[t2 - 56:b2 - 56, l2 - 112:r2 - 112])


def test_an_unknown_sample_photo_names_the_known_ones():
    with pytest.raises(KeyError, match="chelsea"):
        samples.sample_photo_path("dog")


def test_the_imagenet_model_is_sure_of_the_gallery_photos():
    """The photo figures explain confident predictions: the espresso cup at p > 0.8, the cat
    (its three cat classes together) at p > 0.9, with the installed EfficientNet-Lite0."""
    from minicnn.models.registry import find_weights
    try:
        find_weights("efficientnet_lite0")
    except FileNotFoundError as err:
        pytest.skip(f"EfficientNet-Lite0's weights package not installed: {err}")
    model = mc.models.efficientnet_lite0(pretrained=True).eval()
    for name, floor in (("coffee", 0.8), ("chelsea", 0.9)):
        x = model.preprocess.preprocess(samples.sample_photo(name, 224))   # (1, 3, 224, 224)
        with mc.no_grad():
            z = mc.to_numpy(model(mc.tensor(x)).data)[0].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        wanted = [model.labels.index(c) for c in samples.SAMPLE_PHOTOS[name].imagenet]
        assert int(np.argmax(p)) in wanted, (name, model.labels[int(np.argmax(p))])
        assert p[wanted].sum() > floor, (name, p[wanted].sum())
