"""Download weights once into a cache folder, checking their SHA-256.

``cache_dir()`` is ``$MINICNN_HOME`` if set, else ``~/.cache/minicnn``.
``fetch(url)`` returns the cached file if it is already there (so it works
offline), else downloads it with urllib to a temporary file in the cache and
renames it into place only after the hash checked out: a broken download never
leaves a file that looks complete.

torchvision names its weight files ``<name>-<first hex digits of the file's
SHA-256>.pth`` (``squeezenet1_1-b8a52dc0.pth``); ``hash_prefix_from_name``
reads that prefix so ``fetch`` can check it without being told.
"""
import hashlib
import os
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^-]*$")
CHUNK = 1 << 20


class FetchError(OSError):
    """A file could not be downloaded; the message says where to put it by hand."""


def cache_dir():
    """Folder for downloaded weights: ``$MINICNN_HOME`` or ``~/.cache/minicnn`` (not created here)."""
    return Path(os.environ.get("MINICNN_HOME") or Path.home() / ".cache" / "minicnn").expanduser()


def sha256_file(path):
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    ``os.replace`` is atomic: readers see the old file or the complete new one,
    never half a file. On any error the temporary file is removed.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        with open(tmp, "xb") as f:  # "x": never overwrite; mode follows the umask
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def hash_prefix_from_name(filename):
    """``"squeezenet1_1-b8a52dc0.pth"`` -> ``"b8a52dc0"``; None when the name carries no hash."""
    match = _HASH_IN_NAME.search(os.path.basename(filename))
    return match.group(1) if match else None


def _check_filename(filename):
    bad = (not filename or filename in (".", "..") or ".." in filename or "\0" in filename
           or any(sep and sep in filename for sep in ("/", "\\", os.sep, os.altsep)))
    if bad:
        raise ValueError(f"refusing file name {filename!r}: it must be a plain name inside the cache "
                         f"folder (no path separators, no '..')")


def _progress_bar(total, name, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name)


def fetch(url, sha256_prefix=None, filename=None, progress=True):
    """Return the path of ``url``'s file in the cache, downloading it if it is not there yet.

    Inputs:
    - url: http(s):// or file:// address.
    - sha256_prefix: leading hex digits the file's SHA-256 must have; by default
      read from the file name (``hash_prefix_from_name``); ``""`` skips the check.
    - filename: name in the cache (default: the last part of the URL); a plain
      name only, never a path.
    - progress: show a tqdm bar while downloading (when tqdm is installed).

    Raises FetchError (an OSError) when the download fails, naming the URL and
    the full path where the file can be put by hand; ValueError on a hash mismatch
    (the downloaded file is deleted).
    """
    if filename is None:
        filename = urllib.parse.unquote(os.path.basename(urllib.parse.urlparse(url).path))
    _check_filename(filename)
    if sha256_prefix is None:
        sha256_prefix = hash_prefix_from_name(filename) or ""
    sha256_prefix = sha256_prefix.lower()
    folder = cache_dir()
    dest = folder / filename
    if dest.is_file():
        actual = sha256_file(dest)
        if not actual.startswith(sha256_prefix):
            raise ValueError(f"cached file {dest} has sha256 {actual}, expected it to start with "
                             f"{sha256_prefix}; delete it to download it again from {url}")
        return dest
    return download_to(url, dest, sha256_prefix, progress)


def download_to(url, dest, sha256_prefix="", progress=True):
    """Download ``url`` into the file ``dest`` (its folder is created), checking that the
    file's SHA-256 starts with ``sha256_prefix`` ("" checks nothing). The bytes go to a
    temporary file renamed into place only when complete and checked (``atomic_write``).

    Raises FetchError (an OSError) naming the URL and where to put the file by hand;
    ValueError on a hash mismatch (the download is discarded). Returns ``dest``.
    """
    dest = Path(dest)
    folder, filename = dest.parent, dest.name
    folder.mkdir(parents=True, exist_ok=True)

    def download(out):
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                total = response.headers.get("Content-Length")
                bar = _progress_bar(int(total) if total else None, filename, progress)
                try:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise FetchError(
                f"could not download {url} ({err}).\n"
                f"Looked for the file in {folder} (set MINICNN_HOME to move the cache).\n"
                f"To install it by hand, download {url}\nand save it as {dest}") from None
        actual = digest.hexdigest()
        if not actual.startswith(sha256_prefix):
            raise ValueError(f"download of {url} has sha256 {actual}, expected it to start with "
                             f"{sha256_prefix}; the file was discarded (corrupt download or wrong URL)")

    atomic_write(dest, download)
    return dest
