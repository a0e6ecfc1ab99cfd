"""Datasets, images and preprocessing (minicnn.data, minicnn.data.cifar, minicnn.data.images).

Everything is checked first on small files the tests write themselves; the
real datasets are read where present and skipped with a reason otherwise.
"""
import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from minicnn.data import cifar, images
from minicnn.data import datasets as data
from tests.conftest import shared_data


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """Every test gets its own empty $MINICNN_HOME: nothing is written to the user's cache."""
    home = tmp_path / "minicnn-home"
    monkeypatch.setenv("MINICNN_HOME", str(home))
    monkeypatch.delenv("MINICNN_DATASET_DIRS", raising=False)
    return home


# -------------------------------------------------------------------- IDX
def idx_bytes(array, type_code):
    """An IDX file written by hand: 00 00 type ndim, big-endian dims, big-endian values."""
    big_endian = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian).tobytes()


@pytest.mark.parametrize("type_code, dtype", [(0x08, np.uint8), (0x0B, np.int16),
                                              (0x0C, np.int32), (0x0D, np.float32)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_gives_back_what_was_written(tmp_path, rng, type_code, dtype, gz):
    array = rng.integers(-100 if dtype != np.uint8 else 0, 200, size=(3, 4, 5)).astype(dtype)
    raw = idx_bytes(array, type_code)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = data.read_idx(path)
    assert got.dtype == dtype and got.dtype.isnative and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, array)


def test_read_idx_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "not-idx.bin"
    path.write_bytes(b"\x50\x4b\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match="not-idx.bin.*not an IDX file"):
        data.read_idx(path)


def test_read_idx_truncated_file_names_the_file_and_sizes(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8), 0x08)[:-10])
    with pytest.raises(ValueError, match=r"short-idx3-ubyte.*\(2, 28, 28\).*truncated"):
        data.read_idx(path)


def write_fake_mnist(folder, split, n, rng, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    stem = "train" if split == "train" else "t10k"
    x = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    for kind, array, ndim in (("images", x, 3), ("labels", y, 1)):
        raw = idx_bytes(array, 0x08)
        name = f"{stem}-{kind}-idx{ndim}-ubyte"
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return x, y


@pytest.mark.parametrize("gz", [True, False])
def test_load_fashion_mnist_from_a_root_folder(tmp_path, rng, gz):
    x, y = write_fake_mnist(tmp_path / "fm", "test", 12, rng, gz=gz)
    got_x, got_y = data.load_fashion_mnist("test", root=tmp_path / "fm", download=False)
    assert got_x.dtype == np.uint8 and got_y.dtype == np.int64
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


def test_mnist_is_found_in_the_cache(cache_home, rng):
    x, _ = write_fake_mnist(cache_home / "datasets" / "mnist", "train", 5, rng)
    np.testing.assert_array_equal(data.load_mnist("train", download=False)[0], x)


def test_minicnn_dataset_dirs_replaces_the_system_folders(tmp_path, rng, monkeypatch):
    """$MINICNN_DATASET_DIRS lists the system folders (files directly in one, or in its
    fashion-mnist/ subfolder); set empty, it hides Debian's copy: a fresh machine, for tests."""
    debian = tmp_path / "debian"
    x_debian, _ = write_fake_mnist(debian, "test", 4, rng)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", str(debian))
    np.testing.assert_array_equal(data.load_fashion_mnist("test", download=False)[0], x_debian)
    monkeypatch.setenv("MINICNN_DATASET_DIRS", "")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.load_fashion_mnist("test", download=False)
    x_mine, _ = write_fake_mnist(tmp_path / "shared" / "fashion-mnist", "test", 6, rng)
    monkeypatch.setenv("MINICNN_DATASET_DIRS", f"{tmp_path / 'empty'}{os.pathsep}"
                                               f"{tmp_path / 'shared'}")
    np.testing.assert_array_equal(data.load_fashion_mnist("test", download=False)[0], x_mine)
    assert data.system_dataset_dirs("mnist")[0] == tmp_path / "empty" / "mnist"


def test_missing_fashion_mnist_lists_every_place_and_how_to_get_it(tmp_path, cache_home,
                                                                    monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", str(tmp_path / "no-debian"))
    with pytest.raises(FileNotFoundError) as err:
        data.load_fashion_mnist("train", root=tmp_path / "mine", download=False)
    message = str(err.value)
    for place in (tmp_path / "mine", cache_home / "datasets" / "fashion-mnist",
                  tmp_path / "no-debian"):
        assert str(place) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_bad_split_is_an_error():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.load_mnist("val", download=False)


def test_real_fashion_mnist_has_60000_and_10000_balanced():
    if not os.path.isdir(data.DEBIAN_FASHION_MNIST):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    x, y = data.load_fashion_mnist("train", root=data.DEBIAN_FASHION_MNIST, download=False)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    x, y = data.load_fashion_mnist("test", root=data.DEBIAN_FASHION_MNIST, download=False)
    assert x.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(y), [1000] * 10)
    assert len(data.FASHION_MNIST_CLASSES) == 10


def test_real_mnist_test_set_has_10000_digits():
    x, y = data.load_mnist("test", root=shared_data("mnist"), download=False)
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert set(np.unique(y)) == set(range(10))
    assert data.MNIST_CLASSES[7] == "7"


# --------------------------------------------------------------- CIFAR-10
@pytest.fixture
def fake_cifar(rng):
    """Random 32x32 images, class-major: 2 per class for train, 1 per class for test."""
    def split(per_class):
        y = np.repeat(np.arange(10), per_class).astype(np.int64)
        return rng.integers(0, 256, size=(len(y), 32, 32, 3)).astype(np.uint8), y
    return {"train": split(2), "test": split(1)}


def planes(x):
    """(N, 32, 32, 3) -> (N, 3072): the R, G, B planes one after the other, as CIFAR stores them."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


def add_file(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_python_archive(path, arrays, protocol=2, numpy_module=None):
    """Pickled dicts as in cifar-10-python.tar.gz: 5 train batches + test_batch (+ meta)."""
    x, y = arrays["train"]
    chunks = [(f"data_batch_{i + 1}", x[idx], y[idx])
              for i, idx in enumerate(np.array_split(np.arange(len(y)), 5))]
    chunks.append(("test_batch", *arrays["test"]))
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "cifar-10-batches-py/batches.meta",
                 pickle.dumps({b"label_names": [c.encode() for c in cifar.CIFAR10_CLASSES]}))
        for name, bx, by in chunks:
            raw = pickle.dumps({b"batch_label": b"fake", b"labels": [int(v) for v in by],
                                b"data": planes(bx), b"filenames": [b"f.png"] * len(by)},
                               protocol=protocol)
            if numpy_module:                                # e.g. the NumPy 1.x spelling
                raw = raw.replace(b"numpy._core.multiarray", numpy_module.encode())
            add_file(tar, f"cifar-10-batches-py/{name}", raw)


def write_binary_archive(path, arrays):
    """Records of 1 label byte + 3072 pixel bytes, as in cifar-10-binary.tar.gz."""
    x, y = arrays["train"]
    chunks = [(f"data_batch_{i + 1}.bin", x[idx], y[idx])
              for i, idx in enumerate(np.array_split(np.arange(len(y)), 5))]
    chunks.append(("test_batch.bin", *arrays["test"]))
    with tarfile.open(path, "w:gz") as tar:
        for name, bx, by in chunks:
            records = np.concatenate([by[:, None].astype(np.uint8), planes(bx)], axis=1)
            add_file(tar, f"cifar-10-batches-bin/{name}", records.tobytes())


def write_image_tree_archive(path, arrays, prefix="cifar10/"):
    """PNG files (lossless) <prefix><split>/<class>/NNNN.png, classes and files in a
    scrambled order inside the archive."""
    scrambled = ["truck", "cat", "airplane", "ship", "dog", "bird", "horse", "frog",
                 "automobile", "deer"]
    with tarfile.open(path, "w:gz") as tar:
        for split in ("test", "train"):
            x, y = arrays[split]
            for cls in scrambled:
                indices = np.flatnonzero(y == cifar.CIFAR10_CLASSES.index(cls))
                for number, i in reversed(list(enumerate(indices))):
                    buf = io.BytesIO()
                    Image.fromarray(x[i]).save(buf, format="PNG")
                    add_file(tar, f"{prefix}{split}/{cls}/{number:04d}.png", buf.getvalue())


def test_three_archive_forms_give_identical_arrays_in_canonical_order(tmp_path, fake_cifar):
    write_python_archive(tmp_path / "cifar-10-python.tar.gz", fake_cifar)
    write_binary_archive(tmp_path / "cifar-10-binary.tar.gz", fake_cifar)
    write_image_tree_archive(tmp_path / "tree.tar.gz", fake_cifar)
    for split in ("train", "test"):
        expected_x, expected_y = fake_cifar[split]
        for archive in ("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz", "tree.tar.gz"):
            x, y = cifar.load_cifar10(split, root=tmp_path / archive, download=False)
            assert x.dtype == np.uint8 and y.dtype == np.int64
            assert x.shape == (len(expected_y), 32, 32, 3)
            np.testing.assert_array_equal(x, expected_x, err_msg=archive)
            np.testing.assert_array_equal(y, expected_y, err_msg=archive)


def test_extracted_folders_and_a_folder_holding_the_archive(tmp_path, fake_cifar):
    write_binary_archive(tmp_path / "cifar-10-binary.tar.gz", fake_cifar)
    write_image_tree_archive(tmp_path / "tree.tar.gz", fake_cifar, prefix="")
    for archive in ("cifar-10-binary.tar.gz", "tree.tar.gz"):
        with tarfile.open(tmp_path / archive) as tar:
            tar.extractall(tmp_path / ("out-" + archive), filter="data")
    expected_x, expected_y = fake_cifar["test"]
    for root in (tmp_path / "out-cifar-10-binary.tar.gz",            # holds cifar-10-batches-bin/
                 tmp_path / "out-cifar-10-binary.tar.gz" / "cifar-10-batches-bin",
                 tmp_path / "out-tree.tar.gz"):                      # holds train/ and test/
        x, y = cifar.load_cifar10("test", root=root, download=False)
        np.testing.assert_array_equal(x, expected_x)
        np.testing.assert_array_equal(y, expected_y)


def test_python_batches_in_numpy_1_spelling_load(tmp_path, fake_cifar):
    write_python_archive(tmp_path / "c.tar.gz", fake_cifar, numpy_module="numpy.core.multiarray")
    x, _ = cifar.load_cifar10("test", root=tmp_path / "c.tar.gz", download=False)
    np.testing.assert_array_equal(x, fake_cifar["test"][0])


def test_second_load_comes_from_the_npz_cache(tmp_path, fake_cifar, cache_home, monkeypatch):
    source = tmp_path / "tree.tar.gz"
    write_image_tree_archive(source, fake_cifar)
    x1, y1 = cifar.load_cifar10("train", root=source, download=False)
    cached = list((cache_home / "datasets" / "cifar10").glob("tree.tar.gz-*.npz"))
    assert len(cached) == 1

    def no_decoding(source):
        raise AssertionError("decoded again instead of reading the cache")
    monkeypatch.setattr(cifar, "_decode_cifar10", no_decoding)
    x2, y2 = cifar.load_cifar10("train", root=source, download=False)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)

    monkeypatch.undo()                            # a changed source is decoded again ...
    monkeypatch.setenv("MINICNN_HOME", str(cache_home))
    os.utime(source, (time.time() + 100, time.time() + 100))
    cifar.load_cifar10("test", root=source, download=False)
    now = list((cache_home / "datasets" / "cifar10").glob("tree.tar.gz-*.npz"))
    assert len(now) == 1 and now != cached       # ... and the stale cache file is removed


class Payload:
    """A pickle that would create a folder while being loaded: it must be refused."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_malicious_pickle_in_a_python_archive_is_refused(tmp_path):
    target = tmp_path / "pwned"
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        add_file(tar, "cifar-10-batches-py/test_batch",
                 pickle.dumps({b"data": Payload(str(target)), b"labels": [0]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"test_batch.*refused.*mkdir"):
        cifar.load_cifar10("test", root=tmp_path, download=False)
    assert not target.exists()


def test_unknown_class_folder_names_the_expected_classes(tmp_path):
    folder = tmp_path / "test" / "aeroplane"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "0.png")
    with pytest.raises(ValueError, match="aeroplane.*airplane, automobile"):
        cifar.load_cifar10("test", root=tmp_path, download=False)


def test_missing_cifar_lists_the_places_looked(tmp_path, cache_home):
    with pytest.raises(FileNotFoundError) as err:
        cifar.load_cifar10("train", root=tmp_path / "nothing", download=False)
    assert str(tmp_path / "nothing") in str(err.value)
    assert str(cache_home / "datasets" / "cifar10") in str(err.value)


@pytest.mark.slow
def test_real_cifar10_jpeg_archive_50000_train_10000_test():
    source = shared_data("cifar10", "cifar10-jpeg.tar.gz")
    x, y = cifar.load_cifar10("train", root=source, download=False)      # decodes 60k JPEGs
    assert x.shape == (50000, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [5000] * 10)
    start = time.perf_counter()
    x, y = cifar.load_cifar10("test", root=source, download=False)       # from the cache
    assert time.perf_counter() - start < 5
    assert x.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(y), [1000] * 10)


# ---------------------------------------------------------- preprocessing
PRESETS = {"imagenet": images.IMAGENET_TORCHVISION, "efficientnet": images.EFFICIENTNET_LITE,
           "caffe_bgr": images.CAFFE_BGR, "gray28": images.GRAYSCALE_28,
           "gray_fashion": images.grayscale(28, 0.2860, 0.3530)}


@pytest.mark.parametrize("name", PRESETS)
def test_deprocess_inverts_preprocess(name, rng):
    pre = PRESETS[name]
    shape = (2, 8, 9, 3) if pre.channels == 3 else (2, 8, 9)
    pixels = rng.integers(0, 256, size=shape).astype(np.uint8)
    x = pre.preprocess(pixels, dtype=np.float64)
    assert x.shape == (2, pre.channels, 8, 9) and x.dtype == np.float64
    back = pre.deprocess(x)
    assert back.shape == pixels.shape
    assert np.abs(back - pixels).max() < 1e-9                      # float64: exact to rounding
    back32 = pre.deprocess(pre.preprocess(pixels))                  # float32 model input
    assert np.abs(back32 - pixels).max() < 255 * 1e-5


def test_presets_hold_the_published_numbers():
    p = images.IMAGENET_TORCHVISION
    assert p.mean == (0.485, 0.456, 0.406) and p.std == (0.229, 0.224, 0.225)
    assert p.scale == 1 / 255 and p.resize == 256 and p.input_size == (224, 224)
    e = images.EFFICIENTNET_LITE
    assert e.mean == (127.0,) * 3 and e.std == (128.0,) * 3 and e.scale == 1.0
    x = e.preprocess(np.full((1, 1, 3), 255, np.uint8))
    np.testing.assert_allclose(x.ravel(), (255 - 127) / 128)


def test_preprocess_shapes_and_channel_order(rng):
    rgb = rng.integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    assert images.IMAGENET_TORCHVISION.preprocess(rgb).shape == (1, 3, 5, 7)
    x = images.IMAGENET_TORCHVISION.preprocess(rgb[None].repeat(4, 0))
    assert x.shape == (4, 3, 5, 7) and x.dtype == np.float32 and x.flags.c_contiguous
    bgr = images.CAFFE_BGR.preprocess(rgb, dtype=np.float64)
    np.testing.assert_allclose(bgr[0, 0], rgb[..., 2] - 103.939)   # first channel is blue
    assert images.CAFFE_BGR.deprocess(bgr[0]).shape == (5, 7, 3)   # CHW -> HWC
    gray = images.GRAYSCALE_28
    assert gray.preprocess(np.zeros((28, 28), np.uint8)).shape == (1, 1, 28, 28)
    assert gray.preprocess(np.zeros((6, 28, 28), np.uint8)).shape == (6, 1, 28, 28)
    assert gray.preprocess(np.zeros((28, 28, 1), np.uint8)).shape == (1, 1, 28, 28)
    assert gray.deprocess(np.zeros((6, 1, 28, 28))).shape == (6, 28, 28)
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*\(5, 7, 4\)"):
        images.IMAGENET_TORCHVISION.preprocess(np.zeros((5, 7, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(2, 1, 5, 5\)"):
        images.IMAGENET_TORCHVISION.deprocess(np.zeros((2, 1, 5, 5)))


def test_deprocess_does_not_clip():
    x = np.full((1, 3, 2, 2), 10.0)                  # far outside the range of real pixels
    assert images.IMAGENET_TORCHVISION.deprocess(x).min() > 255


def test_preprocess_travels_as_json():
    for pre in PRESETS.values():
        d = json.loads(json.dumps(pre.to_dict()))
        assert images.Preprocess.from_dict(d) == pre
    with pytest.raises(ValueError, match="unknown keys.*'crop'"):
        images.Preprocess.from_dict({"mean": [0], "std": [1], "crop": 3})
    with pytest.raises(ValueError, match="mean .* and std"):
        images.Preprocess(mean=(0, 0, 0), std=(1,))


def test_fit_measures_per_channel_statistics(rng):
    pixels = rng.integers(0, 256, size=(10, 4, 4, 3)).astype(np.uint8)
    pre = images.Preprocess.fit(pixels)
    np.testing.assert_allclose(pre.mean, (pixels / 255).mean(axis=(0, 1, 2)))
    x = pre.preprocess(pixels, dtype=np.float64)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-12)


def test_preprocess_load_reads_a_file_at_the_model_size(tmp_path):
    Image.new("RGB", (400, 300), (255, 0, 0)).save(tmp_path / "red.png")
    pre = images.IMAGENET_TORCHVISION
    x = pre.load(tmp_path / "red.png")
    assert x.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(x[0, :, 0, 0], (np.array([1, 0, 0]) - pre.mean) / pre.std,
                               rtol=1e-6)
    Image.new("L", (50, 40)).save(tmp_path / "gray.png")
    assert images.GRAYSCALE_28.load(tmp_path / "gray.png").shape == (1, 1, 28, 28)


# ---------------------------------------------------------------- display
def test_to_displayable_modes():
    img = np.array([[-50.0, 0.0], [127.5, 400.0]])
    np.testing.assert_allclose(images.to_displayable(img), [[0, 0], [0.5, 1]])        # clip
    mm = images.to_displayable(img, "minmax")
    assert mm.min() == 0 and mm.max() == 1 and mm[0, 1] == pytest.approx(50 / 450)
    spiky = np.concatenate([np.linspace(0, 1, 1000), [1e6]])
    assert images.to_displayable(spiky, "percentile", 99.5)[500] == pytest.approx(0.5, abs=0.01)
    assert images.to_displayable(spiky, "minmax")[500] < 1e-6      # one outlier flattens minmax
    np.testing.assert_array_equal(images.to_displayable(np.full((3, 3), 7.0), "minmax"), 0)
    assert img[0, 0] == -50.0                                     # input untouched
    with pytest.raises(ValueError, match="'clip', 'minmax' or 'percentile'"):
        images.to_displayable(img, "log")


# ------------------------------------------------------------- load_image
def test_exif_orientation_is_applied(tmp_path):
    """Stored 32 wide x 16 high, red left, blue right; orientation 6 = rotate 90° clockwise."""
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = images.load_image(tmp_path / "phone.jpg")
    assert shown.shape == (32, 16, 3)                                  # now portrait
    top, bottom = shown[:12].mean(axis=(0, 1)), shown[-12:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_image_modes_are_converted(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)                                      # opaque
    rgba[1, 1] = (10, 20, 30, 0)                                        # transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = images.load_image(tmp_path / "rgba.png")
    assert got.shape == (4, 4, 3) and got.dtype == np.uint8
    assert tuple(got[0, 0]) == (10, 20, 30) and tuple(got[1, 1]) == (255, 255, 255)

    palette = Image.new("P", (3, 2))
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png")
    got = images.load_image(tmp_path / "p.png")
    assert tuple(got[0, 1]) == (200, 100, 50) and tuple(got[0, 0]) == (0, 0, 0)

    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "l.png")
    got = images.load_image(tmp_path / "l.png")
    assert got.shape == (3, 4, 3) and (got == gray[..., None]).all()
    np.testing.assert_array_equal(images.load_image(tmp_path / "l.png", mode="L"), gray)
    assert images.load_image(tmp_path / "rgba.png", mode="L").shape == (4, 4)

    deep = (np.arange(6, dtype=np.uint16).reshape(2, 3) * 13107)        # 0 .. 65535
    Image.fromarray(deep).save(tmp_path / "16bit.png")
    np.testing.assert_array_equal(images.load_image(tmp_path / "16bit.png", mode="L"),
                                  np.arange(6).reshape(2, 3) * 51)


def test_resize_short_side_then_center_crop(tmp_path):
    Image.new("RGB", (400, 300)).save(tmp_path / "wide.png")
    assert images.load_image(tmp_path / "wide.png", size=256).shape == (256, 341, 3)
    cropped = images.load_image(tmp_path / "wide.png", size=256, center_crop=224)
    assert cropped.shape == (224, 224, 3)
    assert images.load_image(tmp_path / "wide.png", size=(28, 20), mode="L").shape == (28, 20)
    tall = np.zeros((10, 6), np.uint8)
    assert images.resize_short_side(tall, 3).shape == (5, 3)            # arrays stay arrays
    ramp = np.arange(7)[None].repeat(5, 0)
    np.testing.assert_array_equal(images.center_crop(ramp, 3), ramp[1:4, 2:5])
    with pytest.raises(ValueError, match="crop 9x9 is larger than the image 5x7"):
        images.center_crop(ramp, 9)


def test_missing_or_unreadable_image_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        images.load_image(tmp_path / "nowhere.jpg")
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg"):
        images.load_image(tmp_path / "notes.jpg")


def test_real_photo_loads_as_the_imagenet_recipe():
    x = images.IMAGENET_TORCHVISION.load(shared_data("photos", "cat.jpg"))
    assert x.shape == (1, 3, 224, 224) and np.isfinite(x).all()


# --------------------------------------------------------- ImageNet labels
def test_imagenet_class_names():
    names, wnids = data.imagenet_classes(), data.imagenet_wnids()
    assert len(names) == len(wnids) == 1000 and len(set(wnids)) == 1000
    assert names[281] == "tabby" and wnids[281] == "n02123045"
    assert data.imagenet_classes(full=True)[281] == "tabby, tabby cat"
    assert names[0] == "tench" and names[999] == "toilet tissue"


def test_list_imagenet_samples(tmp_path):
    for name in ("n02123045_tabby.JPEG", "n01440764_tench.JPEG", "README.txt"):
        (tmp_path / name).write_bytes(b"")
    samples = data.list_imagenet_samples(tmp_path)
    assert [(p.name, i) for p, i in samples] == [("n01440764_tench.JPEG", 0),
                                                 ("n02123045_tabby.JPEG", 281)]
    (tmp_path / "n99999999_unicorn.JPEG").write_bytes(b"")
    with pytest.raises(ValueError, match="n99999999_unicorn.*n99999999"):
        data.list_imagenet_samples(tmp_path)


def test_real_imagenet_samples_match_their_file_names():
    samples = data.list_imagenet_samples(shared_data("imagenet", "samples"))
    names = data.imagenet_classes()
    assert len(samples) == 100
    for path, index in samples:
        assert path.stem.split("_", 1)[1].replace("_", " ") == names[index]


# ------------------------------------------------ minibatches, augmentation
def test_iterate_minibatches_covers_every_index_once():
    batches = list(data.iterate_minibatches(10, 4))
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(10))
    assert [len(b) for b in data.iterate_minibatches(10, 4, drop_last=True)] == [4, 4]
    shuffled = np.concatenate(list(data.iterate_minibatches(10, 3, shuffle=True, rng=1)))
    assert sorted(shuffled) == list(range(10)) and list(shuffled) != list(range(10))
    again = np.concatenate(list(data.iterate_minibatches(10, 3, shuffle=True, rng=1)))
    np.testing.assert_array_equal(shuffled, again)                  # same seed, same order
    with pytest.raises(TypeError, match="rng=np.random.default_rng"):
        next(data.iterate_minibatches(10, 3, shuffle=True))


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_random_crop_flip_returns_crops_of_the_padded_image(rng, mode):
    batch = rng.integers(1, 256, size=(16, 3, 6, 5)).astype(np.uint8)
    before = batch.copy()
    out = images.random_crop_flip(batch, pad=2, rng=rng, mode=mode)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    np.testing.assert_array_equal(batch, before)                    # input untouched
    padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)),
                    mode="constant" if mode == "zeros" else "reflect")
    for n in range(16):                                            # a loop only in the test
        windows = [padded[n, :, i:i + 6, j:j + 5] for i in range(5) for j in range(5)]
        windows += [w[..., ::-1] for w in windows]
        assert any((out[n] == w).all() for w in windows)
    if mode == "reflect":
        assert (out > 0).all()                                      # no zero border appears


def test_random_crop_flip_without_padding_only_flips(rng):
    batch = rng.random((50, 2, 4, 4))
    out = images.random_crop_flip(batch, pad=0, rng=rng)
    flipped = [(out[n] == batch[n, :, :, ::-1]).all() for n in range(50)]
    kept = [(out[n] == batch[n]).all() for n in range(50)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 40
    np.testing.assert_array_equal(images.random_crop_flip(batch, 0, rng=rng, flip=False), batch)
