"""What a file may claim: the checks every reader makes before it reads.

A few hundred bytes can ask a reader for gigabytes (a zip member or a gzip
stream that inflates 1000:1, a header declaring a huge shape), and some paths
never end at all (a named pipe blocks ``open`` until someone writes to it; a
link to ``/dev/zero`` reads zeros forever). So readers of weights, images and
datasets

* open only regular files (``open_regular``: the type is checked on the open
  file itself, so nothing can swap the file between check and read);
* compare every declared size with the bytes present and with a cap
  (``check_claim``) before allocating anything;
* decompress gzip as a stream, counting what comes out, and stop at the cap
  (``gunzip_limited``) -- a declared size can lie, a running count cannot.
"""
import fcntl
import os
import stat
import zlib

__all__ = ["open_regular", "check_claim", "gunzip_limited", "DEFLATE_MAX_RATIO"]

DEFLATE_MAX_RATIO = 1100      # deflate packs at most ~1032:1 (runs of one byte)
CHUNK = 1 << 20


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path, who):
    """Open ``path`` for binary reading if it is a regular file (links followed), else a
    ValueError naming it and what it is: a pipe would block the reader forever and a
    device such as ``/dev/zero`` never ends. Opened non-blocking, so even a pipe returns
    at once; the type is checked on the open file (``fstat``), not on the name."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileNotFoundError(f"{who}: {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{who}: {path} is a folder, not a file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{who}: {path} is {_kind(mode)}, not a regular file; only files "
                             f"are read (a pipe or a device could block or never end)")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_claim(where, claimed, limit, what="bytes"):
    """ValueError unless ``claimed`` (a size a file declares) is at most ``limit``."""
    if claimed > limit:
        raise ValueError(f"{where} claims {claimed:,} {what}, over the limit of {limit:,} "
                         f"(corrupt or hostile file; refused before allocating anything)")


def gunzip_limited(f, limit, where, head_limit=None):
    """The decompressed bytes of the gzip stream in the open file ``f``, at most ``limit``
    of them: decompressed chunk by chunk with a running count, so a bomb stops at the cap
    instead of filling memory. ``head_limit(first bytes)``, if given, may lower the cap
    once the first chunk is out (e.g. to the size a header declares). A damaged stream is
    a ValueError naming ``where``."""
    out, total, asked, cap = [], 0, head_limit is None, "the limit"
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)   # gzip header + deflate
    try:
        while True:
            chunk = decomp.unconsumed_tail or f.read(CHUNK)
            if not chunk:
                break
            piece = decomp.decompress(chunk, CHUNK)
            total += len(piece)
            if total > limit:
                raise ValueError(f"{where} inflates to more than {limit:,} bytes, {cap} (a "
                                 f"decompression bomb, or not the file it should be); stopped "
                                 f"reading there")
            out.append(piece)
            if not asked and (total >= 4096 or decomp.eof):
                declared, asked = head_limit(b"".join(out)), True
                if declared < limit:
                    limit, cap = declared, "the size its header declares"
                if total > limit:
                    raise ValueError(f"{where} inflates to more than {limit:,} bytes, {cap}; "
                                     f"stopped reading there")
            if decomp.eof:                             # a second gzip member may follow
                rest = decomp.unused_data
                decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
                if rest:
                    piece = decomp.decompress(rest, CHUNK)
                    total += len(piece)
                    if total > limit:
                        raise ValueError(f"{where} inflates to more than {limit:,} bytes, "
                                         f"{cap}; stopped reading there")
                    out.append(piece)
    except zlib.error as err:
        raise ValueError(f"{where} is a damaged gzip file ({err})") from None
    return b"".join(out)
