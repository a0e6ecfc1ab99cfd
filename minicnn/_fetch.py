"""Where datasets live and how they arrive: the cache folder, downloads, progress bars.

Shared by ``minicnn.data`` and ``minicnn.cifar``. Only the standard library
and (optionally) tqdm are used.
"""
import os
import sys
import urllib.request
from contextlib import nullcontext
from pathlib import Path


def minicnn_home():
    """Cache root: ``$MINICNN_HOME``, else ``~/.cache/minicnn``."""
    return Path(os.environ.get("MINICNN_HOME") or Path.home() / ".cache" / "minicnn").expanduser()


def check_split(split, who):
    if split not in ("train", "test"):
        raise ValueError(f"{who}: split must be 'train' or 'test', got {split!r}")


def download_file(url, dest, timeout=30):
    """Fetch ``url`` into ``dest`` (kept if already there); a partial file never stays.
    Network failures raise OSError (urllib.error.URLError, TimeoutError)."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    print(f"minicnn: downloading {url} -> {dest}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with progress(size, dest.name, unit="B") as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


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
