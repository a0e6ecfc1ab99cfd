"""What a gallery section hands back and what stops it, shared by core.py (which runs the
sections) and sections/ (which build the figures): ``Figure``, ``ModelInfo``, ``Skip``."""
from dataclasses import dataclass, field


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
