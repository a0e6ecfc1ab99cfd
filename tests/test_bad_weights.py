"""Bad weight files, as a careless user or an attacker would make them: each one gives a
clear error naming the file and the key or argument, allocates nothing absurd, never
hangs, and leaves the files that were already there untouched.

Every fixture is built here, in ``tmp_path``: checkpoints opcode by opcode (no torch
needed), safetensors headers by hand, .npz files by ``save_npz`` and then damaged.
"""
import hashlib
import json
import os
import struct
import threading
import zipfile

import numpy as np
import pytest

import minicnn as mc
from minicnn import cli
from minicnn.io import load_npz, load_safetensors, load_torch, save_npz
from tests.io_fixtures.torch_format import write_checkpoint


def _hashes(folder):
    """sha256 of every file under ``folder``: what "nothing was lost" compares."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _refused(load, path, pattern):
    """``load(path)`` raises a ValueError matching ``pattern`` and changes no file beside it."""
    before = _hashes(path.parent)
    with pytest.raises(ValueError, match=pattern) as err:
        load(path)
    assert _hashes(path.parent) == before
    return err.value


def _zip_checkpoint(path, pickle_bytes, storages=None):
    """A torch zip checkpoint whose data.pkl is ``pickle_bytes``, written by hand."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        for key, data in (storages or {}).items():
            z.writestr(f"archive/data/{key}", data)
    return path


def _memo_put(i):
    return b"r" + struct.pack("<I", i)         # LONG_BINPUT


def _memo_get(i):
    return b"j" + struct.pack("<I", i)         # LONG_BINGET


def _shared_nested_list(depth):
    """Opcodes building L[depth], where L[0] = [] and L[i] = [L[i-1], L[i-1]]: a few bytes per
    level, but printing it writes 2**depth empty lists. Leaves L[depth] on the stack."""
    out = b"]" + _memo_put(0) + b"0"            # build, remember, pop (POP is "0")
    for i in range(1, depth + 1):
        out += b"](" + _memo_get(i - 1) + _memo_get(i - 1) + b"e" + _memo_put(i) + b"0"
    return out + _memo_get(depth)


def _text(s):
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


# ------------------------------------------------------------------ 1-3: PyTorch checkpoints

def test_stride0_tensor_larger_than_the_file_is_refused_before_allocating(tmp_path):
    """Item 1: a 622-byte file declaring a (32768, 65536) float32 tensor of stride 0 (8 GiB)."""
    path = tmp_path / "expand.pth"
    write_checkpoint(path, {"0": np.ones(1, np.float32)}, {"w": ("0", 0, (32768, 65536), (0, 0))})
    assert os.path.getsize(path) < 1000
    err = _refused(load_torch, path, r"expand\.pth: tensor 'w' \(shape \(32768, 65536\), "
                                     r"stride \(0, 0\).*declares 8589934592 bytes.*more than "
                                     r"the whole \d+-byte file")
    assert "refused before allocating" in str(err)


def test_many_stride0_tensors_cannot_add_up_past_the_allowance(tmp_path):
    """Each tensor fits the file, but together they ask for far more than it holds."""
    path = tmp_path / "many.pth"
    tensors = {f"w{i}": ("0", 0, (200,), (0,)) for i in range(400)}
    write_checkpoint(path, {"0": np.ones(1, np.float32)}, tensors)
    size = os.path.getsize(path)
    assert 800 < size < 400 * 800
    _refused(load_torch, path, r"many\.pth: tensor 'w\d+'.*past 4 times the file's")


def test_storage_size_larger_than_its_record_names_storage_and_tensor(tmp_path):
    path = tmp_path / "short_storage.pth"
    # the storage holds 4 elements; the tensor reads 10 of them
    write_checkpoint(path, {"0": np.ones(4, np.float32)}, {"w": ("0", 0, (10,), (1,))})
    with pytest.raises(ValueError, match=r"short_storage\.pth: tensor 'w'.*needs 10 float32 "
                                         r"elements of storage '0' but only 4 are there"):
        load_torch(path)


def test_nested_shared_list_given_to_torch_device_is_refused_at_once(tmp_path):
    """Item 2: a 919-byte-class pickle whose torch.device argument prints as 2**60 lists.
    Before, str() of it never finished; now the stand-in accepts only a short string."""
    body = (b"\x80\x02}" + _text("w") + b"ctorch\ndevice\n" + _shared_nested_list(60)
            + b"\x85R" + b"s.")
    path = _zip_checkpoint(tmp_path / "device_bomb.pth", body)
    assert os.path.getsize(path) < 1500
    _refused(load_torch, path, r"device_bomb\.pth.*torch\.device is allowed only as "
                               r"device\(str\[, int\]\), got device\(a list of 2 items")


@pytest.mark.parametrize("where", ["size", "wrapper"])
def test_deep_nesting_anywhere_in_the_pickle_is_bounded(tmp_path, where):
    """Only the expected types reach the allowed globals (a nested list as torch.Size), and
    a deep structure beside a valid state_dict is refused by its depth, quickly."""
    if where == "size":
        body = (b"\x80\x02}" + _text("w") + b"ctorch\nSize\n" + _shared_nested_list(80)
                + b"\x85R" + b"s.")
        message = r"each entry of torch\.Size must be an integer in \[0, 2\*\*62\), got a list of 2 items"
    else:
        body = (b"\x80\x02}" + _text("state_dict") + b"}" + _text("history")
                + _shared_nested_list(80) + b"ss.")
        message = r"nests containers more than 64 deep"
    path = _zip_checkpoint(tmp_path / f"deep_{where}.pth", body)
    _refused(load_torch, path, rf"deep_{where}\.pth.*{message}")


def test_a_list_holding_itself_is_refused(tmp_path):
    body = b"\x80\x02}" + _text("w") + b"]" + _memo_put(0) + _memo_get(0) + b"as."
    path = _zip_checkpoint(tmp_path / "cycle.pth", body)
    with pytest.raises(ValueError, match=r"cycle\.pth.*contains itself"):
        load_torch(path)


def test_non_string_key_is_a_clear_error_in_load_and_weights_import(tmp_path, capsys):
    """Item 3: ``{1: tensor}``; before, ``weights import`` died with an AttributeError."""
    path = tmp_path / "int_key.pth"
    write_checkpoint(path, {"0": np.ones(3, np.float32)}, {1: ("0", 0, (3,), (1,))})
    _refused(load_torch, path, r"int_key\.pth: the state_dict has the key 1 \(int\)")
    before = _hashes(tmp_path)
    out = tmp_path / "out"
    code = cli.main(["weights", "import", str(path), "--arch", "fashion_net", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "int_key.pth: the state_dict has the key 1 (int)" in err
    assert "Traceback" not in err and not out.exists() and _hashes(tmp_path) == before


# ------------------------------------------------------------------ 4: safetensors

def _safetensors(path, header, data=b"", length=None):
    """A safetensors file from a header given as JSON text (so it can be malformed on purpose)."""
    text = header.encode() if isinstance(header, str) else header
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize("name, header, data, length, message", [
    ("overflow", '{"w": {"dtype": "F32", "shape": [1180591620717411303424], "data_offsets": [0, 4]}}',
     b"\0" * 4, None, r"tensor 'w': shape \[1180591620717411303424\] is not a list of at most 32 "
                      r"integers in \[0, 2\*\*62\)"),
    ("zero_and_huge", '{"w": {"dtype": "F32", "shape": [0, 4611686018427387903, 4611686018427387903],'
                      ' "data_offsets": [0, 0]}}', b"", None, r"tensor 'w': shape .* cannot be made"),
    ("too_long", '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4, 10 ** 6,
     r"header length 1000000 does not fit a \d+-byte file"),
    ("deep", '{"w": ' + "[" * 100000 + "]" * 100000 + "}", b"", None,
     r"the header's JSON is nested too deeply"),
    ("duplicate", '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                  '"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', b"\0" * 8, None,
     r"header: the name 'w' appears twice; each tensor name must be unique"),
])
def test_bad_safetensors_header_is_a_clear_error(tmp_path, name, header, data, length, message):
    """Item 4: shape [2**70] (an OverflowError before), a header length beyond the file,
    JSON nested 100,000 deep (RecursionError before), a name given twice (silently the last)."""
    path = _safetensors(tmp_path / f"{name}.safetensors", header, data, length)
    before = _hashes(tmp_path)
    with pytest.raises(ValueError, match=rf"{name}\.safetensors: {message}"):
        load_safetensors(path)
    assert _hashes(tmp_path) == before


def test_safetensors_header_over_the_limit_is_refused_before_reading_it(tmp_path, monkeypatch):
    """A header of more than MAX_HEADER_BYTES (100 MB; 1 KB here to keep the test small)."""
    from minicnn.io import safetensors
    monkeypatch.setattr(safetensors, "MAX_HEADER_BYTES", 1000)
    header = json.dumps({f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]}
                         for i in range(40)})
    path = _safetensors(tmp_path / "huge.safetensors", header, b"\0" * 40)
    with pytest.raises(ValueError, match=rf"huge\.safetensors: header length {len(header)} is over "
                                         r"the 1000-byte limit"):
        load_safetensors(path)


# ------------------------------------------------------------------ 5-7: .npz + manifest

META = {"architecture": "tiny_net", "labels": ["no", "yes"],
        "accuracy": {"value": 0.75, "on": "4 hand-made images"}}


def _state(seed, n=4):
    rng = np.random.default_rng(seed)
    return {f"layer{i}.weight": rng.standard_normal((8, 8)).astype(np.float32) for i in range(n)}


def _pair_without_inside_manifest(folder, name, state):
    """An .npz + .json pair as written before the manifest moved inside the .npz (like the
    shipped weights/): np.savez's arrays, the manifest beside them holding their sha256."""
    path = folder / f"{name}.npz"
    np.savez(path, **state)
    meta = {"format": "minicnn-weights", "version": 1, "architecture": "tiny_net",
            "file": path.name, "sha256": mc.io.sha256_file(path),
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in state.items()}}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize("kind", ["old_pair", "new"])
def test_truncated_npz_with_matching_manifest_is_a_clear_error(tmp_path, kind):
    """Item 5: cut in half, with a .json whose sha256 matches the cut file (both copied by a
    broken sync, say); before, zipfile.BadZipFile came out of np.load."""
    if kind == "old_pair":
        path = _pair_without_inside_manifest(tmp_path, "cut", _state(0))
    else:
        path = tmp_path / "cut.npz"
        save_npz(path, _state(0), META)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    meta = json.loads((tmp_path / "cut.json").read_text())
    meta["sha256"] = mc.io.sha256_file(path)
    (tmp_path / "cut.json").write_text(json.dumps(meta))
    before = _hashes(tmp_path)
    with pytest.raises(ValueError, match=r"cut\.npz: not a readable \.npz \(a zip file\).*truncated"):
        load_npz(path)
    assert _hashes(tmp_path) == before


def test_npz_member_lying_about_its_shape_or_holding_objects_names_the_array(tmp_path):
    """The .npy header is checked against the member's bytes before allocating; an object
    array is refused by name (numpy's own message, "allow_pickle=False", named nothing)."""
    path = _pair_without_inside_manifest(tmp_path, "liar", {"w": np.zeros(4, np.float32)})
    with zipfile.ZipFile(path, "w") as z:
        with z.open("w.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (2 ** 40,)})
            member.write(b"\0" * 16)
    meta = json.loads((tmp_path / "liar.json").read_text())
    meta["sha256"] = mc.io.sha256_file(path)
    (tmp_path / "liar.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"liar\.npz: array 'w': its header declares shape "
                                         r"\(1099511627776,\) of float32 \(4398046511104 bytes\), "
                                         r"but the file holds 16 bytes"):
        load_npz(path)
    objects = _pair_without_inside_manifest(tmp_path, "objects", {"w": np.zeros(2)})
    np.savez(objects, w=np.array([{"a": 1}, None], dtype=object))
    meta = json.loads((tmp_path / "objects.json").read_text())
    meta["sha256"] = mc.io.sha256_file(objects)
    (tmp_path / "objects.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"objects\.npz: array 'w' holds Python objects"):
        load_npz(objects)


def test_npz_with_more_members_than_a_weights_file_has_is_refused_before_reading_them(
        tmp_path, monkeypatch):
    """A zip of very many members (here over a lowered cap of 50) is refused by its count,
    before any member is read or compared with the others."""
    from minicnn.io import npz
    monkeypatch.setattr(npz, "MAX_MEMBERS", 50)
    many = {f"w{i}": np.zeros(1, np.float32) for i in range(51)}
    path = _pair_without_inside_manifest(tmp_path, "many", many)
    with pytest.raises(ValueError, match=r"many\.npz: the zip holds 51 members; .* at most 50"):
        load_npz(path)
    many.pop("w50")                                            # at the cap: read as usual
    path = _pair_without_inside_manifest(tmp_path, "many", many)
    assert sorted(load_npz(path)[0]) == sorted(many)


def test_save_interrupted_between_npz_and_json_loses_nothing(tmp_path, monkeypatch):
    """Item 6: the process dies after the .npz is replaced and before the .json is: the new
    arrays load with their own manifest (carried inside the .npz), not refused, not mixed."""
    from minicnn.io import npz
    path = tmp_path / "net.npz"
    save_npz(path, _state(1), {**META, "accuracy": {"value": 0.5}})
    real_write = npz.atomic_write

    def dies_before_the_json(target, write):
        if str(target).endswith(".json"):
            raise KeyboardInterrupt("killed")
        real_write(target, write)

    monkeypatch.setattr(npz, "atomic_write", dies_before_the_json)
    with pytest.raises(KeyboardInterrupt):
        save_npz(path, _state(2), {**META, "accuracy": {"value": 0.9}})
    monkeypatch.setattr(npz, "atomic_write", real_write)
    assert json.loads((tmp_path / "net.json").read_text())["accuracy"]["value"] == 0.5  # stale
    state, meta = load_npz(path)
    assert meta["accuracy"] == {"value": 0.9} and meta["sha256"] == mc.io.sha256_file(path)
    for key, arr in _state(2).items():
        np.testing.assert_array_equal(state[key], arr, err_msg=key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json", "net.npz"]  # no temp left


def test_weights_that_cannot_load_are_an_error_not_random_weights(tmp_path, monkeypatch):
    """Item 6, the second half: a shipped-style pair whose .npz was replaced behind its
    manifest is refused by load_npz, by the model constructor and by the gallery, which
    used to fall back to untrained weights and let the demo exit 0."""
    from minicnn.gallery import core as gallery
    from minicnn.models import pretrained
    folder = tmp_path / "weights"
    folder.mkdir()
    model = mc.models.fashion_net()
    path = folder / "fashion_net.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in model.state_dict().items()})
    stale = {"format": "minicnn-weights", "version": 1, "architecture": "fashion_net",
             "file": path.name, "sha256": "0" * 64, "labels": [str(i) for i in range(10)]}
    (folder / "fashion_net.json").write_text(json.dumps(stale))
    monkeypatch.setattr(pretrained, "REPO_WEIGHTS", folder)
    monkeypatch.setattr(pretrained, "INSTALLED_WEIGHTS", tmp_path / "none")
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    before = _hashes(folder)
    message = r"fashion_net\.npz: sha256 is [0-9a-f]{64} but its manifest .*fashion_net\.json expects 0{64}"
    with pytest.raises(ValueError, match=message):
        mc.models.fashion_net(pretrained=True)
    ctx = gallery.Context(tmp_path / "out", True, "numpy", 0, None, ())
    with pytest.raises(ValueError, match=message):
        ctx.small
    assert not any("untrained" in text for _, text in ctx.notes)
    assert _hashes(folder) == before


def test_concurrent_saves_leave_the_last_writers_complete_pair(tmp_path, monkeypatch):
    """Item 7: writer A has replaced the .npz and not yet its .json when writer B saves to the
    same path. Before, B's .npz and .json could land in between (A then wrote its .json over
    B's): an unloadable pair, and both printed "saved". Now B waits for A's whole save, so the
    last writer, B, wins: its arrays, with its manifest, inside the .npz and beside it."""
    from minicnn.io import npz
    path = tmp_path / "shared.npz"
    states = {"A": _state(20, n=12), "B": _state(21, n=12)}
    returned = {}
    a_replaced_npz, b_replaced_npz = threading.Event(), threading.Event()
    real_write = npz.atomic_write

    def write_then_linger(target, write):
        real_write(target, write)
        if str(target).endswith(".npz"):
            if threading.current_thread().name == "A":
                a_replaced_npz.set()
                b_replaced_npz.wait(timeout=0.5)     # the window a second writer could slip into
            else:
                b_replaced_npz.set()

    def writer(name):
        if name == "B":
            a_replaced_npz.wait(timeout=10)
        returned[name] = save_npz(path, states[name], {**META, "writer": name})

    monkeypatch.setattr(npz, "atomic_write", write_then_linger)
    threads = [threading.Thread(target=writer, args=(w,), name=w) for w in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state, meta = load_npz(path)
    assert meta["writer"] == "B"
    for key, arr in states["B"].items():
        np.testing.assert_array_equal(state[key], arr, err_msg=key)
    sidecar = json.loads((tmp_path / "shared.json").read_text())
    assert sidecar == meta == returned["B"] and sidecar["sha256"] == mc.io.sha256_file(path)
    assert returned["A"]["sha256"] != returned["B"]["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.json", "shared.npz"]


# ------------------------------------------------------------------ 8: downloads

class _Server:
    """A local HTTP server on 127.0.0.1 serving ``body`` and declaring ``declared`` bytes;
    with ``stall``, it sends the first half and then waits (a download to kill)."""

    def __init__(self):
        import http.server
        self.body, self.declared, self.stall = b"", None, False
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(server.declared or len(server.body)))
                self.end_headers()
                if server.stall:
                    self.wfile.write(server.body[:len(server.body) // 2])
                    self.wfile.flush()
                    server.release.wait(30)
                else:
                    self.wfile.write(server.body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/weights.bin"   # no hash in the name

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_download_shorter_than_its_content_length_is_not_cached(tmp_path, monkeypatch, server):
    """Item 8: the server declares 4096 bytes and sends 1000; the name carries no hash, so
    only the length can tell. Before, the 1000 bytes were cached as the complete file."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "other.pth").write_bytes(b"an earlier download")
    monkeypatch.setenv("MINICNN_HOME", str(cache))
    server.body, server.declared = os.urandom(1000), 4096
    before = _hashes(cache)
    with pytest.raises(mc.io.download.FetchError,
                       match=r"could not download http://127\.0\.0\.1:\d+/weights\.bin \(the server "
                             r"declared Content-Length 4096 bytes but sent 1000;"):
        mc.io.fetch(server.url, progress=False)
    assert _hashes(cache) == before                      # nothing cached, nothing left behind
    server.declared = None
    path = mc.io.fetch(server.url, progress=False)
    assert path.read_bytes() == server.body


def test_a_killed_downloads_partial_file_is_removed_by_the_next_run(tmp_path, server):
    """Item 8: a download killed midway (SIGKILL: no ``finally`` runs) leaves its .partial
    file; the next download of the same file removes it and completes."""
    import subprocess
    import sys
    import time
    cache = tmp_path / "cache"
    server.body, server.stall = os.urandom(200_000), True
    dest = cache / "weights.bin"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from minicnn.io.download import download_to;"
            "download_to(sys.argv[2], sys.argv[3], progress=False)")
    child = subprocess.Popen([sys.executable, "-c", code, root, server.url, str(dest)])
    try:
        deadline = time.time() + 60
        while not list(cache.glob(".weights.bin.*.partial")) and time.time() < deadline:
            time.sleep(0.05)
        partials = list(cache.glob(".weights.bin.*.partial"))
        assert partials and str(child.pid) in partials[0].name
    finally:
        child.kill()
        child.wait()
    assert partials[0].exists() and not dest.exists()
    server.stall = False
    assert mc.io.download.download_to(server.url, dest, progress=False) == dest
    assert dest.read_bytes() == server.body
    assert not list(cache.glob("*.partial")) and sorted(p.name for p in cache.iterdir()) == ["weights.bin"]


# ------------------------------------------------------------------ questionable inputs

def _params(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("bad, message", [
    ("shape", r"'classifier\.3\.bias' has shape \(3,\) in the state dict but \(10,\) in the model"),
    ("int", r"'classifier\.3\.bias' holds int64 values but the model's classifier\.3\.bias is "
            r"float32; refusing to cast silently"),
    ("complex", r"'classifier\.3\.bias' holds complex128 values"),
    ("nan", r"'classifier\.3\.bias' holds 2 NaN or infinite value\(s\) out of 10"),
])
def test_load_state_dict_is_all_or_nothing_and_refuses_questionable_values(bad, message):
    """The last key is bad: before, the 11 keys before it were already overwritten, and int,
    complex or NaN values were cast or loaded without a word."""
    model = mc.models.fashion_net(seed=0)
    before = _params(model)
    state = {k: v + 1 for k, v in _params(mc.models.fashion_net(seed=1)).items()}
    last = "classifier.3.bias"
    assert list(state)[-1] == last and len(state) == 12
    state[last] = {"shape": np.zeros(3, np.float32),
                   "int": np.arange(10),
                   "complex": np.ones(10) + 1j,
                   "nan": np.array([0, np.nan, np.inf] + [0] * 7, np.float32)}[bad]
    with pytest.raises(ValueError, match=message):
        model.load_state_dict(state)
    after = _params(model)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_non_finite_weights_in_a_file_name_the_file_and_key(tmp_path):
    from minicnn.models.registry import load_pretrained
    state = _params(mc.models.fashion_net(seed=2))
    state["features.0.weight"][0, 0, 1, 1] = np.nan
    path = tmp_path / "nan.safetensors"
    mc.io.save_safetensors(path, state)
    model = mc.models.fashion_net(seed=0)
    before = _params(model)
    with pytest.raises(ValueError, match=r"nan\.safetensors does not fit fashion_net: load_state_dict: "
                                         r"'features\.0\.weight' holds 1 NaN or infinite value"):
        load_pretrained(model, path)
    assert all(np.array_equal(_params(model)[k], v) for k, v in before.items())


def test_manifest_with_3_labels_for_10_classes_is_refused(tmp_path):
    from minicnn.models.registry import load_pretrained
    model = mc.models.fashion_net(seed=0)
    path = tmp_path / "fashion_net.npz"
    save_npz(path, model.state_dict(), {"architecture": "fashion_net", "labels": ["a", "b", "c"]})
    before = _hashes(tmp_path)
    with pytest.raises(ValueError, match=r"fashion_net\.npz: its manifest lists 3 labels but "
                                         r"fashion_net has 10 classes"):
        load_pretrained(mc.models.fashion_net(seed=1), path)
    assert _hashes(tmp_path) == before


@pytest.mark.torch
def test_legitimate_torch_files_still_load_under_the_limits(tmp_path):
    """The limits refuse only the absurd: tied weights (two keys, one storage), an expanded
    (stride-0) tensor smaller than the file and a nested checkpoint load as torch saved them."""
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, generator=g)
    state = {"embed.weight": w, "head.weight": w, "scale": torch.ones(1).expand(8),
             "bn.num_batches_tracked": torch.tensor(3)}
    path = tmp_path / "legit.pth"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
                "epoch": 3, "device": torch.device("cpu")}, path)
    loaded = load_torch(path)
    assert list(loaded) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value.numpy(), err_msg=key)
