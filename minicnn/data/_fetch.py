"""Where datasets live and how they arrive: the cache folder, downloads, progress bars.

Shared by ``minicnn.data`` and ``minicnn.data.cifar``; the downloading itself is
``minicnn.io.download``'s (atomic: a broken download leaves no file), the bars tqdm's.
"""
import sys
from contextlib import nullcontext
from pathlib import Path

from ..io.download import cache_dir, download_to


def minicnn_home():
    """Cache root: ``$MINICNN_HOME``, else ``~/.cache/minicnn`` (the weights' cache too)."""
    return cache_dir()


def check_split(split, who):
    if split not in ("train", "test"):
        raise ValueError(f"{who}: split must be 'train' or 'test', got {split!r}")


def download_file(url, dest):
    """Fetch ``url`` into ``dest`` unless it is already there; a partial file never stays
    (``io.download.download_to``). Network failures raise OSError (``FetchError``)."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    print(f"minicnn: downloading {url} -> {dest}", file=sys.stderr)
    return download_to(url, dest)


class _NoBar(nullcontext):
    def update(self, n=1):
        pass


def progress(total, desc, unit="it"):
    """A tqdm progress bar (a context manager with ``update(n)``) if tqdm is
    installed, else a silent stand-in with the same two methods."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=(unit == "B"), leave=False)
