"""`minicnn data fetch|list`: checked downloads into the cache, found again on a second run,
one line of advice offline. A local HTTP server on 127.0.0.1 stands in for the mirrors."""
import functools
import hashlib
import http.server
import socket
import threading

import pytest

from minicnn import cli
from minicnn.data import fetch


@pytest.fixture
def mirror(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL, list of requested paths)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()


def _publish(folder, files):
    """Write files into the mirror; returns the Remote.files entries with their MD5s."""
    entries = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        entries.append((name, hashlib.md5(data).hexdigest()))
    return tuple(entries)


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"          # nothing listens there any more


def test_fetch_downloads_checks_and_finds_the_files_again(home, mirror):
    folder, url, requested = mirror
    files = {"a.gz": b"alpha" * 1000, "b.gz": b"beta" * 10}
    remote = fetch.Remote(_publish(folder, files), (url,), "the offline way", "1 kB")
    done = fetch.fetch_dataset("mnist", remote=remote, progress=False)
    assert [how for _, how in done] == ["downloaded", "downloaded"]
    for path, _ in done:
        assert path.parent == home / "datasets" / "mnist"
        assert path.read_bytes() == files[path.name]
    n = len(requested)
    again = fetch.fetch_dataset("mnist", remote=remote, progress=False)
    assert [how for _, how in again] == ["already there"] * 2 and len(requested) == n


def test_a_download_with_the_wrong_checksum_is_discarded(home, mirror):
    folder, url, _ = mirror
    (folder / "a.gz").write_bytes(b"tampered")
    remote = fetch.Remote((("a.gz", hashlib.md5(b"original").hexdigest()),), (url,), "x", "1 kB")
    with pytest.raises(ValueError, match="md5"):
        fetch.fetch_dataset("mnist", remote=remote, progress=False)
    target = home / "datasets" / "mnist"
    assert not target.exists() or list(target.iterdir()) == []      # no file, no partial


def test_a_cached_file_with_the_wrong_checksum_is_downloaded_again(home, mirror):
    folder, url, _ = mirror
    remote = fetch.Remote(_publish(folder, {"a.gz": b"good bytes"}), (url,), "x", "1 kB")
    target = home / "datasets" / "mnist"
    target.mkdir(parents=True)
    (target / "a.gz").write_bytes(b"half a fi")
    assert fetch.fetch_dataset("mnist", remote=remote, progress=False)[0][1] == "downloaded"
    assert (target / "a.gz").read_bytes() == b"good bytes"


def test_the_second_mirror_is_tried_when_the_first_fails(home, mirror):
    folder, url, _ = mirror
    remote = fetch.Remote(_publish(folder, {"a.gz": b"x" * 99}), (_closed_port_url(), url),
                          "x", "1 kB")
    assert fetch.fetch_dataset("mnist", remote=remote, progress=False)[0][1] == "downloaded"


def test_offline_the_command_says_in_one_line_what_to_do_instead(home, monkeypatch, capsys):
    remote = fetch.DATASETS["fashion-mnist"]._replace(urls=(_closed_port_url(),))
    monkeypatch.setitem(fetch.DATASETS, "fashion-mnist", remote)
    assert cli.main(["data", "fetch", "fashion-mnist"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "apt-get install dataset-fashion-mnist" in err
    assert str(home / "datasets" / "fashion-mnist") in err


def test_list_says_how_to_get_a_missing_dataset_and_where_a_present_one_is(home, capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("fashion-mnist", "mnist", "cifar10"):
        assert f"minicnn data fetch {name}" in out
    target = home / "datasets" / "mnist"
    target.mkdir(parents=True)
    for name, _ in fetch.DATASETS["mnist"].files:
        (target / name).write_bytes(b"0" * 250_000)
    assert cli.main(["data", "list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("mnist"))
    assert "1.0 MB" in line and str(target) in line


def test_an_unknown_dataset_is_a_usage_error_naming_the_known_ones(home, capsys):
    assert cli.main(["data", "fetch", "imagenet"]) == 2
    assert "fashion-mnist, mnist, cifar10" in capsys.readouterr().err
