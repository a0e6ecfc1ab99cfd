"""``minicnn data fetch NAME`` and ``minicnn data list``: the datasets, where they are, how to get them.

    from minicnn.data.fetch import fetch_dataset, dataset_status
    fetch_dataset("fashion-mnist")      # downloads the four .gz files into the cache, MD5-checked
    dataset_status("cifar10")           # Status(name, found_in, files, size_bytes, how_to_get)

Each dataset is a few published files with their published checksums (MD5: that is
what the authors give). A download goes through ``io.download.download_to``: a
progress bar, the checksum checked, the file renamed into place only when complete,
so an interrupted or corrupt download never leaves a file that looks whole. A file
already in the cache with the right checksum is not downloaded again. Where no
network is reachable, the error says in one line what to do instead.
"""
import hashlib
import sys
from pathlib import Path
from typing import NamedTuple

from ..io.download import FetchError, download_to
from ._fetch import minicnn_home
from .datasets import DEBIAN_FASHION_MNIST, system_dataset_dirs

__all__ = ["DATASETS", "Remote", "Status", "fetch_dataset", "dataset_status", "dataset_folder",
           "DatasetFetchError"]


class Remote(NamedTuple):
    """A dataset as published: its files with their MD5s, and the addresses that serve them."""
    files: tuple                       # ((file name, md5), ...)
    urls: tuple                        # base addresses, tried in order (file name appended)
    offline: str                       # what to do without a network
    size: str                          # the download's size, for the user


DATASETS = {
    "fashion-mnist": Remote(
        files=(("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
               ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
               ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
               ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
              "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        offline=f"apt-get install dataset-fashion-mnist (Debian/Ubuntu; {DEBIAN_FASHION_MNIST})",
        size="30 MB"),
    "mnist": Remote(
        files=(("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
               ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
               ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
               ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
        urls=("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        offline="copy the four .gz IDX files from a machine that has them",
        size="11 MB"),
    "cifar10": Remote(
        files=(("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        urls=("https://www.cs.toronto.edu/~kriz/",),
        offline="copy cifar-10-python.tar.gz (or an image-folder tree train/<class>/*.png) "
                "from a machine that has it",
        size="163 MB"),
}


class DatasetFetchError(OSError):
    """The dataset could not be downloaded (no network, or every address failed)."""


class Status(NamedTuple):
    name: str
    found_in: object                   # Path of the folder that has it, or None
    files: list                        # the files found there
    size_bytes: int
    how_to_get: str


def _check_name(name):
    if name not in DATASETS:
        raise KeyError(f"no dataset {name!r}; choose one of {', '.join(DATASETS)}")


def dataset_folder(name):
    """The cache folder that ``fetch_dataset`` writes into: ``$MINICNN_HOME/datasets/<name>``."""
    _check_name(name)
    return minicnn_home() / "datasets" / name


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def how_to_get(name):
    """One line: the command, and the offline alternative with the folder to fill."""
    remote = DATASETS[name]
    names = ", ".join(f for f, _ in remote.files)
    return (f"minicnn data fetch {name} ({remote.size}); offline: {remote.offline}, "
            f"or put {names} in {dataset_folder(name)}")


def fetch_dataset(name, remote=None, progress=True, log=sys.stderr):
    """Download dataset ``name``'s files into ``dataset_folder(name)``, each checked against
    its published MD5; files already there with the right MD5 are kept. Returns
    [(path, "downloaded" | "already there")]. ``remote`` replaces ``DATASETS[name]``
    (a mirror of your own). Raises DatasetFetchError saying what to do instead when no
    address answers, ValueError when a download's checksum is wrong (nothing is kept)."""
    _check_name(name)
    remote = remote or DATASETS[name]
    folder = dataset_folder(name)
    done = []
    for filename, md5 in remote.files:
        dest = folder / filename
        if dest.is_file() and _md5(dest) == md5:
            done.append((dest, "already there"))
            continue
        if dest.is_file():
            print(f"minicnn data: {dest} has the wrong checksum; downloading it again", file=log)
        errors = []
        for base in remote.urls:
            try:
                download_to(base + filename, dest, progress=progress, md5=md5)
                done.append((dest, "downloaded"))
                break
            except FetchError as err:
                errors.append(str(err).splitlines()[0])
        else:
            more = f" (and {len(errors) - 1} other address(es))" if len(errors) > 1 else ""
            raise DatasetFetchError(
                f"{errors[0].removesuffix('.')}{more}. Instead: {remote.offline}, "
                f"or put the files in {folder}")
    return done


def dataset_status(name):
    """Where dataset ``name`` is found (the cache, then the system folders), its files and
    their total size, or how to get it."""
    _check_name(name)
    remote = DATASETS[name]
    wanted = [f for f, _ in remote.files]
    folders = [dataset_folder(name)] + [Path(d) for d in system_dataset_dirs(name)]
    for folder in folders:
        files = [folder / f for f in wanted if (folder / f).is_file()]
        if name == "cifar10" and not files:
            from .cifar import _find_cifar_source
            source = _find_cifar_source(folder) if folder.is_dir() else None
            files = [Path(source)] if source is not None else []
        elif len(files) < len(wanted):
            unpacked = [folder / f[:-3] for f in wanted if (folder / f[:-3]).is_file()]
            files = unpacked if len(unpacked) == len(wanted) else []
        if files:
            size = sum(_size(f) for f in files)
            return Status(name, folder, files, size, "")
    return Status(name, None, [], 0, how_to_get(name))


def _size(path):
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
