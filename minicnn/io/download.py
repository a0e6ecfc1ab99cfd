"""Download weights once into a cache folder, checking their SHA-256.

``cache_dir()`` is ``$MINICNN_HOME`` if set, else ``~/.cache/minicnn``.
``fetch(url)`` returns the cached file if it is already there (so it works
offline), else downloads it with urllib to a temporary file in the cache and
renames it into place only after the hash checked out and the server sent every
byte its ``Content-Length`` declared: a broken download never leaves a file that
looks complete. The temporary file of a download that was killed (which no
``finally`` could remove) is removed by the next download of the same file.

torchvision names its weight files ``<name>-<first hex digits of the file's
SHA-256>.pth`` (``squeezenet1_1-b8a52dc0.pth``); ``hash_prefix_from_name``
reads that prefix so ``fetch`` can check it without being told.
"""
import hashlib
import http.client
import os
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^-]*$")
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.partial$")
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
    never half a file. On any error the temporary file is removed; those of
    earlier writers that were killed are removed first (``remove_stale_partials``).
    """
    path = os.fspath(path)
    remove_stale_partials(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = _temporary_name(folder, name)
    try:
        with open(tmp, "xb") as f:  # "x": never overwrite; mode follows the umask
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _temporary_name(folder, name):
    """``.<name>.<pid>-<random hex>.partial`` beside the final file: the pid says who writes it."""
    return os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True                    # exists but not ours, or cannot tell: leave its file
    return True


def remove_stale_partials(path):
    """Remove the temporary files ``atomic_write`` left beside ``path`` from processes that
    no longer run (a download killed midway). Files of running processes are left alone.
    Returns the removed paths."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL.match(entry)
        if match and match["name"] == name and not _process_alive(int(match["pid"])):
            try:
                os.remove(os.path.join(folder, entry))
                removed.append(os.path.join(folder, entry))
            except OSError:
                pass
    return removed


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


def download_to(url, dest, sha256_prefix="", progress=True, md5=""):
    """Download ``url`` into the file ``dest`` (its folder is created), checking that the
    file's SHA-256 starts with ``sha256_prefix`` ("" checks nothing) and, where only an MD5
    is published (the datasets), that it equals ``md5``. The bytes go to a temporary file
    renamed into place only when complete and checked (``atomic_write``).

    Raises FetchError (an OSError) naming the URL and where to put the file by hand,
    also when the server sends fewer (or more) bytes than its Content-Length declared;
    ValueError on a hash mismatch (the download is discarded). Returns ``dest``.
    """
    dest = Path(dest)
    folder, filename = dest.parent, dest.name
    folder.mkdir(parents=True, exist_ok=True)

    def failed(reason):
        return FetchError(
            f"could not download {url} ({reason}).\n"
            f"Looked for the file in {folder} (set MINICNN_HOME to move the cache).\n"
            f"To install it by hand, download {url}\nand save it as {dest}")

    def download(out):
        digest, digest_md5, received = hashlib.sha256(), hashlib.md5(), 0
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                total = response.headers.get("Content-Length")
                declared = int(total) if total and total.strip().isdigit() else None
                bar = _progress_bar(declared, filename, progress)
                try:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        digest_md5.update(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
            raise failed(err) from None
        if declared is not None and received != declared:
            raise failed(f"the server declared Content-Length {declared} bytes but sent "
                         f"{received}; the partial file was discarded, try again")
        actual = digest.hexdigest()
        if not actual.startswith(sha256_prefix):
            raise ValueError(f"download of {url} has sha256 {actual}, expected it to start with "
                             f"{sha256_prefix}; the file was discarded (corrupt download or wrong URL)")
        if md5 and digest_md5.hexdigest() != md5.lower():
            raise ValueError(f"download of {url} has md5 {digest_md5.hexdigest()}, expected {md5}; "
                             "the file was discarded (corrupt download or wrong URL)")

    atomic_write(dest, download)
    return dest
