"""A synthetic segmentation dataset: Fashion-MNIST items pasted on a black canvas.

    train = SegmentationCanvases("train", size=64, length=4000, seed=0)
    image, mask, placed = train.canvas(7)        # uint8 (64, 64), int64 (64, 64), [Placement]
    images, masks = train.batch([0, 1, 2, 3])    # (4, 64, 64) each

Each canvas holds 1–4 items (``items``), each a Fashion-MNIST image resized
(bilinear) from 28×28 to s×s, s = round(28·scale), scale ~ U(``scale``), at a
uniformly random position fully inside the canvas (redrawn a few times if its
box would cover much of an earlier item's box, so items stay mostly visible). The item's *mask* is its
thresholded pixels, ``item > threshold``; only masked pixels are pasted, so a
later item occludes an earlier one and the per-pixel label is

    mask[i, j] = 1 + class of the last item whose mask covers (i, j),  0 = background.

Hence ``image > threshold`` exactly where ``mask > 0`` — the labels are the
pasted pixels. Classes: 0 background, 1..10 the Fashion-MNIST classes
(``SEG_CLASSES``).

Canvases are generated on the fly, never stored: canvas ``i`` of a split is
drawn from its own generator ``default_rng([seed, split, i])``, so it is the
same whatever order or batch it is asked in, and different seeds give
different datasets. The train split takes its items from the Fashion-MNIST
training images, the test split from the test images.
"""
from collections import namedtuple

import numpy as np
from PIL import Image

from .datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = ["SegmentationCanvases", "Placement", "SEG_CLASSES", "paste_items", "resize_item"]

SEG_CLASSES = ("background",) + tuple(FASHION_MNIST_CLASSES)
_SPLITS = {"train": 0, "test": 1}

Placement = namedtuple("Placement", ["source", "label", "top", "left", "size"])
Placement.__doc__ = ("One pasted item: index ``source`` in the item set, its class ``label`` "
                     "(0..9), its box's ``top``-left corner and side ``size`` in pixels.")


def resize_item(item, size):
    """A 2-D uint8 item resized to size × size (bilinear, Pillow)."""
    if item.shape == (size, size):
        return item.copy()
    return np.asarray(Image.fromarray(item).resize((size, size), Image.Resampling.BILINEAR))


def paste_items(canvas_size, items, labels, placements, threshold):
    """Paste ``items[p.source]`` at each placement, in order -> (image uint8, mask int64).

    Only the item's pixels above ``threshold`` are pasted (and labelled ``label + 1``),
    so later items cover earlier ones.
    """
    h, w = canvas_size
    image = np.zeros((h, w), np.uint8)
    mask = np.zeros((h, w), np.int64)
    for p in placements:
        item = resize_item(items[p.source], p.size)
        on = item > threshold
        box = (slice(p.top, p.top + p.size), slice(p.left, p.left + p.size))
        image[box][on] = item[on]
        mask[box][on] = int(labels[p.source]) + 1
    return image, mask


def _overlap(top, left, side, p):
    """Area shared by the box (top, left, side) and placement p's box."""
    rows = min(top + side, p.top + p.size) - max(top, p.top)
    cols = min(left + side, p.left + p.size) - max(left, p.left)
    return max(rows, 0) * max(cols, 0)


class SegmentationCanvases:
    """Synthetic segmentation split: ``length`` canvases generated on demand (see module doc).

    split: "train" or "test"; size: canvas side (int) or (H, W); items: (min, max) item count;
    scale: (min, max) item scale relative to 28 px; threshold: uint8 level of the item mask;
    max_overlap, tries: an item's box is redrawn (up to ``tries`` times) while it covers more
    than ``max_overlap`` of a smaller box already placed (the last draw is kept regardless);
    seed: dataset seed; source: (images uint8 (M, 28, 28), labels (M,)) to draw items from
    (default: the Fashion-MNIST images of the same split, loaded once, ``data_root``).
    """

    classes = SEG_CLASSES

    def __init__(self, split="train", size=64, length=None, *, items=(1, 4), scale=(0.7, 1.3),
                 threshold=20, max_overlap=0.25, tries=10, seed=0, source=None, data_root=None):
        if split not in _SPLITS:
            raise ValueError(f"SegmentationCanvases: split must be 'train' or 'test', got {split!r}")
        self.split, self.seed, self.threshold = split, int(seed), int(threshold)
        self.max_overlap, self.tries = float(max_overlap), int(tries)
        self.size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
        self.length = int(length if length is not None else (4000 if split == "train" else 500))
        lo, hi = items
        if not 1 <= lo <= hi:
            raise ValueError(f"SegmentationCanvases: items must be (min, max) with 1 <= min <= max, "
                             f"got {items}")
        self.items = (int(lo), int(hi))
        self.scale = (float(scale[0]), float(scale[1]))
        self.max_side = int(round(28 * self.scale[1]))
        if not 0 < self.scale[0] <= self.scale[1] or self.max_side > min(self.size):
            raise ValueError(f"SegmentationCanvases: scale {scale} makes items up to "
                             f"{self.max_side} px, which do not fit a canvas of {self.size}")
        if source is None:
            source = load_fashion_mnist(split, root=data_root)
        self.source_images = np.asarray(source[0], np.uint8)
        self.source_labels = np.asarray(source[1], np.int64)
        if self.source_images.ndim != 3 or len(self.source_images) != len(self.source_labels):
            raise ValueError(f"SegmentationCanvases: source must be (images (M, h, w), labels "
                             f"(M,)), got shapes {self.source_images.shape} and "
                             f"{self.source_labels.shape}")

    def __len__(self):
        return self.length

    @property
    def num_classes(self):
        return len(SEG_CLASSES)

    def placements(self, i):
        """The items of canvas ``i``: a list of Placement from default_rng([seed, split, i])."""
        if not 0 <= i < self.length:
            raise IndexError(f"canvas index {i} out of range for a split of {self.length} canvases")
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], int(i)])
        h, w = self.size
        out = []
        for _ in range(rng.integers(self.items[0], self.items[1] + 1)):
            source = int(rng.integers(len(self.source_images)))
            side = int(round(28 * rng.uniform(*self.scale)))
            for _ in range(self.tries):        # prefer a spot that hides little of the others
                top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                if all(_overlap(top, left, side, p) <= self.max_overlap * min(side, p.size) ** 2
                       for p in out):
                    break
            out.append(Placement(source, int(self.source_labels[source]), top, left, side))
        return out

    def canvas(self, i):
        """Canvas ``i`` -> (image uint8 (H, W), mask int64 (H, W), placements)."""
        placed = self.placements(i)
        image, mask = paste_items(self.size, self.source_images, self.source_labels, placed,
                                  self.threshold)
        return image, mask, placed

    def batch(self, indices):
        """Canvases ``indices`` -> (images uint8 (B, H, W), masks int64 (B, H, W))."""
        pairs = [self.canvas(int(i))[:2] for i in indices]
        if not pairs:
            return np.zeros((0, *self.size), np.uint8), np.zeros((0, *self.size), np.int64)
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def arrays(self, n=None):
        """The first ``n`` canvases (default all) as one (images, masks) pair."""
        return self.batch(range(self.length if n is None else min(n, self.length)))

    def __repr__(self):
        return (f"SegmentationCanvases({self.split!r}, size={self.size}, length={self.length}, "
                f"items={self.items}, scale={self.scale}, seed={self.seed})")
