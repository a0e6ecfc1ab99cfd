"""What a gallery section hands back and what stops it, shared by core.py (which runs the
sections) and sections/ (which build the figures): ``Figure``, ``ModelInfo``, ``Skip``, and
the inputs the context hands out, ``Photo`` and ``Samples``."""
from dataclasses import dataclass, field
from typing import NamedTuple


class Skip(Exception):
    """A section or figure that cannot run here (no model, no data): the reason is shown."""


@dataclass
class Figure:
    """One figure a section asks for: ``build()`` returns a matplotlib figure, or
    (figure, extra caption text) when the caption needs a number the build computed."""
    key: str
    build: object
    technique: str
    formula: str = ""
    paper: str = ""
    params: dict = field(default_factory=dict)
    model: object = None                   # a ModelInfo, for the caption


@dataclass
class ModelInfo:
    """A model ready for the gallery, with what the captions say about it."""
    name: str
    model: object
    trained: bool
    note: str                              # "trained weights, test accuracy 0.91" / "untrained ..."
    labels: list
    kind: str                              # "small" or "photo"

    @property
    def preprocess(self):
        return self.model.preprocess

    def caption(self):
        return f"{self.name} ({self.note})"


class Photo(NamedTuple):
    """A photo input of the ImageNet model."""
    name: str
    x: object                              # (1, 3, H, W) preprocessed
    pixels: object                         # (H, W, 3) uint8, at the model's input size


class Samples(NamedTuple):
    """Inputs of the small net."""
    x: object                              # (N, C, H, W) preprocessed
    pixels: object                         # (N, H, W[, 3]) uint8
    labels: list                           # true classes, None where unknown
    names: list                            # class names, or the --image file names
