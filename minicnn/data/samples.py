"""The sample inputs that ship with minicnn, so demos run offline on a fresh clone.

``weights/samples/fashion_<k>_<name>.png``: the first Fashion-MNIST *test* image
of each class k (Fashion-MNIST is MIT-licensed; written by ``write_fashion_samples``
from the Debian package ``dataset-fashion-mnist``). Photos for the RGB and
ImageNet models come from installed packages at run time, never from files of ours:
``SAMPLE_PHOTOS`` lists scikit-image's CC0 / public-domain photos and textures (an
install requirement) and matplotlib's ``grace_hopper.jpg``, each with its credit, its
licence, the square the gallery shows and the object's box in it:

    pixels = sample_photo("coffee", 224)        # uint8 (224, 224, 3): the framed photo
    box = photo_box("coffee", 224)              # (top, left, bottom, right) of the cup there
    pixels, boxes = two_object_composite(224)   # the cat and the cup side by side
"""
import os
import sys
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

__all__ = ["SAMPLES_DIR", "write_fashion_samples", "fashion_samples", "photo_samples",
           "SamplePhoto", "SAMPLE_PHOTOS", "sample_photo_path", "sample_photo", "photo_box",
           "two_object_composite"]

_REPO_SAMPLES = Path(__file__).resolve().parents[2] / "weights" / "samples"
_INSTALLED_SAMPLES = Path(sys.prefix) / "share" / "minicnn" / "weights" / "samples"
# the repository's copy, or the one a non-editable install put under <prefix>/share
SAMPLES_DIR = _REPO_SAMPLES if _REPO_SAMPLES.is_dir() or not _INSTALLED_SAMPLES.is_dir() \
    else _INSTALLED_SAMPLES


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def write_fashion_samples(out_dir=SAMPLES_DIR, root=None):
    """Save the first test image of each Fashion-MNIST class as a 28×28 PNG; returns the paths."""
    from . import FASHION_MNIST_CLASSES, load_fashion_mnist
    images, labels = load_fashion_mnist("test", root=root)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for k, name in enumerate(FASHION_MNIST_CLASSES):
        i = int(np.flatnonzero(labels == k)[0])
        path = Path(out_dir) / f"fashion_{k}_{_slug(name)}.png"
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    return paths


def fashion_samples(folder=SAMPLES_DIR):
    """[(uint8 image 28×28, label)] of the shipped Fashion-MNIST samples, by class."""
    files = sorted(Path(folder).glob("fashion_*.png"), key=lambda p: int(p.name.split("_")[1]))
    if not files:
        raise FileNotFoundError(f"no Fashion-MNIST samples in {folder}; "
                                "run minicnn.data.samples.write_fashion_samples()")
    samples = []
    for p in files:
        with Image.open(p) as img:
            samples.append((np.asarray(img.convert("L")), int(p.name.split("_")[1])))
    return samples


class SamplePhoto(NamedTuple):
    """A photo that an installed package ships. Boxes are (left, top, right, bottom) in the
    file's own pixels, as Pillow's ``crop`` takes them."""
    package: str                    # "skimage" or "matplotlib"
    file: str                       # the file's name inside the package's data folder
    what: str                       # what it shows
    credit: str                     # photographer / source, as the package credits it
    licence: str
    frame: Optional[tuple] = None   # the square the gallery shows (None: the whole file)
    box: Optional[tuple] = None     # the object inside the frame (None: no single object)
    imagenet: tuple = ()            # ImageNet class names an ImageNet model should give


SAMPLE_PHOTOS = {
    "chelsea": SamplePhoto("skimage", "chelsea.png", "a tabby cat",
                           "Chelsea the cat, photo by Stefan van der Walt (scikit-image)", "CC0",
                           frame=(0, 0, 300, 300), box=(90, 40, 300, 290),
                           imagenet=("Egyptian cat", "tabby", "tiger cat")),
    "coffee": SamplePhoto("skimage", "coffee.png", "an espresso cup on a saucer",
                          "Coffee cup, photo by Rachel Michetti, courtesy of Pikolo Espresso Bar "
                          "(scikit-image)", "CC0",
                          # the box is the cup, rim to base and handle: the "espresso" the
                          # class names is the coffee in its cup. The saucer and the spoon are
                          # objects of their own (with the saucer the box would be 85% of the
                          # picture, a share that any map reaches by chance).
                          frame=(60, 0, 460, 400), box=(163, 20, 400, 358),
                          imagenet=("espresso", "cup")),
    "rocket": SamplePhoto("skimage", "rocket.jpg", "a Falcon 9 rocket on its launch pad",
                          "DSCOVR launch on Falcon 9, photo by SpaceX (scikit-image)",
                          "public domain", frame=(127, 0, 554, 427), box=(290, 105, 335, 405),
                          imagenet=("missile", "projectile")),
    "astronaut": SamplePhoto("skimage", "astronaut.png", "the astronaut Eileen Collins",
                             "Eileen Collins, NASA (scikit-image)", "public domain",
                             box=(0, 30, 430, 512)),
    "grace_hopper": SamplePhoto("matplotlib", "grace_hopper.jpg", "Grace Hopper in uniform",
                                "Grace Hopper, US Navy (matplotlib)", "public domain"),
    "brick": SamplePhoto("skimage", "brick.png", "a brick wall (texture)",
                         "Bricks25, CC0Textures (scikit-image)", "CC0"),
    "gravel": SamplePhoto("skimage", "gravel.png", "gravel (texture)",
                          "Gravel04, CC0Textures (scikit-image)", "CC0"),
    "grass": SamplePhoto("skimage", "grass.png", "grass (texture)",
                         "Grass 01 by linolafett (scikit-image)", "CC0"),
}


def _package_folder(package):
    if package == "skimage":
        import skimage.data
        return Path(skimage.data.__file__).parent
    import matplotlib
    return Path(matplotlib.get_data_path()) / "sample_data"


def sample_photo_path(name):
    """Path of a sample photo inside its installed package (``SAMPLE_PHOTOS[name]``)."""
    if name not in SAMPLE_PHOTOS:
        raise KeyError(f"no sample photo {name!r}; choose one of {sorted(SAMPLE_PHOTOS)}")
    info = SAMPLE_PHOTOS[name]
    try:
        path = _package_folder(info.package) / info.file
    except ImportError:
        path = None
    if path is None or not path.is_file():
        pip_name = "scikit-image" if info.package == "skimage" else "matplotlib"
        raise FileNotFoundError(f"sample photo {name!r} ({info.file}) ships with {pip_name}, "
                                f"which is not installed here: pip install {pip_name}")
    return path


def _resize_square(img, size):
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))


def sample_photo(name, size=None):
    """The photo as uint8 RGB (H, W, 3): its ``frame`` cropped, then resized to size×size
    (bilinear) when ``size`` is given."""
    from .images import load_image
    img = load_image(sample_photo_path(name), "RGB")
    frame = SAMPLE_PHOTOS[name].frame
    if frame is not None:
        left, top, right, bottom = frame
        img = img[top:bottom, left:right]
    return img if size is None else _resize_square(np.ascontiguousarray(img), size)


def photo_box(name, size=None):
    """The object's box in ``sample_photo(name, size)``'s pixels, as array slices
    (top, left, bottom, right): ``pixels[top:bottom, left:right]`` is the object."""
    info = SAMPLE_PHOTOS[name]
    if info.box is None:
        raise ValueError(f"sample photo {name!r} has no single object box")
    left, top, right, bottom = info.box
    if info.frame is not None:
        fl, ft, fr, fb = info.frame
        left, right = max(left, fl) - fl, min(right, fr) - fl
        top, bottom = max(top, ft) - ft, min(bottom, fb) - ft
        fw, fh = fr - fl, fb - ft
    else:
        from PIL import Image
        with Image.open(sample_photo_path(name)) as im:
            fw, fh = im.size
    if size is None:
        return top, left, bottom, right
    sy, sx = size / fh, size / fw
    return (int(round(top * sy)), int(round(left * sx)),
            int(round(bottom * sy)), int(round(right * sx)))


def two_object_composite(size=224, names=("chelsea", "coffee"), background=255):
    """Two sample photos side by side on a plain background, for class-discriminative maps:
    each object in its own half, at half the size. Returns (uint8 (size, size, 3),
    {name: box (top, left, bottom, right)})."""
    half = size // 2
    out = np.full((size, size, 3), background, np.uint8)
    top = (size - half) // 2
    boxes = {}
    for k, name in enumerate(names):
        left = k * half
        out[top:top + half, left:left + half] = sample_photo(name, half)
        try:
            t, l, b, r = photo_box(name, half)
            boxes[name] = (top + t, left + l, top + b, left + r)
        except ValueError:
            boxes[name] = (top, left, top + half, left + half)
    return out, boxes


def photo_samples():
    """Paths of photos that installed packages provide (matplotlib's grace_hopper.jpg;
    scikit-image's sample photos)."""
    paths = []
    for name in ("grace_hopper", "chelsea", "coffee", "astronaut", "rocket"):
        try:
            paths.append(sample_photo_path(name))
        except FileNotFoundError:
            pass
    return paths
