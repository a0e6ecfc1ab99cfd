"""Hostile files: bombs that ask for gigabytes, paths that never end, keys that never print.

Each test builds its hostile input in tmp_path and runs the reader in a child
Python under an address-space ceiling (``RLIMIT_AS`` = 1.5 GB) and a timeout: a
reader that believed the file would die of MemoryError or be killed by the
timeout; a correct one refuses it with a message naming the file, and its peak
resident memory stays far below what the file claims.
"""
import json
import os
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CEILING = 1536 << 20           # address space of the child: bombs claim 3.6 to 4.7 GB
PEAK_MB = 400                  # imports take ~100 MB; a reader that allocated a claim would not fit


def run_capped(code, timeout=60):
    """Run ``code`` (statements; ``path`` is set by the caller's code) in a fresh Python
    under the ceiling -> {"type", "message"} of what it raised (or {} if nothing), plus
    "peak_mb": its peak resident memory since it started (VmHWM). A hang fails the test by its timeout."""
    script = (f"import json, resource\n"
              f"def peak_mb():  # VmHWM: this program's peak since exec (ru_maxrss would\n"
              f"    # include the forked copy of the parent, e.g. a big pytest)\n"
              f"    for line in open('/proc/self/status'):\n"
              f"        if line.startswith('VmHWM:'):\n"
              f"            return int(line.split()[1]) / 1024\n"
              f"    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
              f"resource.setrlimit(resource.RLIMIT_AS, ({CEILING}, {CEILING}))\n"
              f"result = {{}}\n"
              f"try:\n{textwrap.indent(textwrap.dedent(code), '    ')}\n"
              f"except BaseException as err:\n"
              f"    result = {{'type': type(err).__name__, 'message': str(err)[:3000]}}\n"
              f"result['peak_mb'] = peak_mb()\n"
              f"print(json.dumps(result))\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "OPENBLAS_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the reader did not finish in {timeout} s (a hang)")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def refused(code, *patterns, timeout=60):
    """``code`` must raise a ValueError whose message matches every pattern, within the
    ceiling and the timeout; returns the result (with its peak memory)."""
    result = run_capped(code, timeout)
    assert result.get("type") in ("ValueError", "RefusedPickle", "UnsafeCheckpointError"), result
    for pattern in patterns:
        assert pattern in result["message"], (pattern, result["message"])
    assert result["peak_mb"] < PEAK_MB, result
    assert len(result["message"]) < 1000, result["message"]        # one line, not the object
    return result


# ---------------------------------------------------------------- builders
def deflated(prefix, n_zeros, block=1 << 20):
    """A raw deflate stream of ``prefix`` then ``n_zeros`` zero bytes, built without ever
    holding them: after a full flush the compressor forgets the past, so one compressed
    block of zeros can be repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    rep = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    k, rest = divmod(n_zeros, block)
    return head + rep * k + c.compress(bytes(rest)) + c.flush()


def test_the_deflate_builder_gives_what_it_says():
    stream = deflated(b"abc", 5 * (1 << 20) + 7)
    out = zlib.decompress(stream, -15)
    assert out[:3] == b"abc" and len(out) == 3 + 5 * (1 << 20) + 7 and not any(out[3:])


def gzip_bytes(prefix, n_zeros):
    """A gzip file of ``prefix`` + zeros (its CRC is not computed: the readers must stop
    long before the end, where it would be checked)."""
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated(prefix, n_zeros)
            + struct.pack("<II", 0, (len(prefix) + n_zeros) & 0xFFFFFFFF))


def zip_bytes(members):
    """A zip of ``(name, data, uncompressed size, method)`` members, written by hand so a
    member can declare gigabytes without them ever being made (stored members get their
    CRC; a bomb's is left 0: the readers must stop long before checking it)."""
    out, central = bytearray(), bytearray()
    for name, data, usize, method in members:
        name, crc = name.encode(), zlib.crc32(data) if method == 0 else 0
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                           len(data), usize, len(name), 0) + name + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                               len(data), usize, len(name), 0, 0, 0, 0, 0, offset) + name
    return bytes(out + central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members),
                                             len(members), len(central), len(out), 0))


def npy_header(shape, dtype="<f4"):
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


# ---------------------------------------------------------------- decompression bombs
def test_npz_member_inflating_to_3_6_gb_is_refused_before_inflating(tmp_path):
    """A weights .npz whose one array is 3.6 GB of zeros (3.5 MB compressed): the declared
    sizes are checked against a cap proportional to the file before anything inflates."""
    n = 900_000_000                                       # float32: 3.6 GB
    header = npy_header((n,))
    member = deflated(header, 4 * n)
    path = tmp_path / "bomb.npz"
    path.write_bytes(zip_bytes([("features.0.weight.npy", member, len(header) + 4 * n, 8)]))
    result = refused(f"from minicnn.io.npz import read_npz_arrays\n"
                     f"read_npz_arrays({str(path)!r})", str(path), "3,600,000,",
                     "refused before allocating")
    assert result["peak_mb"] < PEAK_MB


def test_pth_record_inflating_to_gigabytes_is_refused_before_inflating(tmp_path):
    """A torch zip checkpoint whose storage record is deflated 3.9 GB of zeros: torch stores
    records uncompressed, so a record claiming more than a few times the file is refused."""
    import minicnn.io as mio
    good = tmp_path / "good.pth"
    mio.save_torch(good, {"w": np.ones(4, np.float32)})
    with zipfile.ZipFile(good) as z:
        pickle_name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        folder = pickle_name[:-len("data.pkl")]
        data_pkl = z.read(pickle_name)
    n = 3_900_000_000
    members = [(pickle_name, data_pkl, len(data_pkl), 0),
               (folder + "data/0", deflated(b"", n), n, 8)]
    path = tmp_path / "bomb.pth"
    path.write_bytes(zip_bytes(members))
    refused(f"import minicnn.io as mio\nmio.load_torch({str(path)!r})",
            str(path), "data/0", "3,900,000,000")


def test_fashion_mnist_gz_inflating_to_4_7_gb_stops_at_its_declared_size(tmp_path):
    """An images .gz whose header says 60000 28x28 images (47 MB) but whose stream inflates
    to 4.7 GB: decompression counts as it goes and stops at the declared size."""
    header = struct.pack(">BBBBIII", 0, 0, 8, 3, 60000, 28, 28)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip_bytes(header, 4_700_000_000))
    labels = struct.pack(">BBBBI", 0, 0, 8, 1, 60000) + bytes(60000)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    refused(f"from minicnn import data\n"
            f"data.load_fashion_mnist('test', root={str(tmp_path)!r}, download=False)",
            "t10k-images-idx3-ubyte.gz", "more than 47,040,016 bytes, the size its header declares", timeout=120)


def test_cifar_tar_gz_with_a_4_5_gb_member_is_refused_at_its_header(tmp_path):
    """A CIFAR-10 .tar.gz whose one member claims 4.5 GB (4.4 MB compressed): refused when
    its header is read -- not after inflating 4.5 GB to skip it, nor to read it."""
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = 4_500_000_000
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(gzip_bytes(info.tobuf(tarfile.USTAR_FORMAT), info.size + 1024 + 512))
    refused(f"import os; os.environ['MINICNN_HOME'] = {str(tmp_path / 'home')!r}\n"
            f"from minicnn.data import cifar\n"
            f"cifar.load_cifar10('train', root={str(path)!r}, download=False)",
            "data_batch_1", "4,500,000,000", timeout=60)


def test_cifar_batch_whose_array_claims_1_3_million_rows_is_refused(tmp_path):
    """A batch pickle calling numpy.ndarray((1300000, 3072)) or declaring that shape for a
    few bytes: the array stand-ins check shape against bytes, so nothing is allocated."""
    import pickle
    as_call = (b"\x80\x02}(C\x04data" + b"cnumpy\nndarray\n" + b"J\x20\xd6\x13\x00M\x00\x0c\x86"
               + b"\x85R" + b"C\x06labels]u.")   # {b"data": ndarray((1300000, 3072)), ...}
    small = np.zeros((2, 3072), np.uint8)
    as_state = pickle.dumps({b"data": small, b"labels": [0, 1]}, protocol=2)
    shape_bytes = b"K\x02M\x00\x0c\x86"                             # (2, 3072): BININT1, BININT2, TUPLE2
    assert as_state.count(shape_bytes) == 1
    as_state = as_state.replace(shape_bytes, b"J\x20\xd6\x13\x00M\x00\x0c\x86")
    for name, raw in (("call", as_call), ("state", as_state)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "test_batch").write_bytes(raw)
        refused(f"from minicnn.data import cifar\n"
                f"cifar.load_cifar10('test', root={str(folder)!r}, download=False)",
                "test_batch")


# ---------------------------------------------------------------- hangs
@pytest.mark.parametrize("reader, suffix", [
    ("import minicnn.io as m; m.load_torch(path)", ".pth"),
    ("import minicnn.io as m; m.load_safetensors(path)", ".safetensors"),
    ("from minicnn.io.npz import read_npz_arrays; read_npz_arrays(path)", ".npz"),
    ("from minicnn.data import read_idx; read_idx(path)", ".gz"),
])
def test_a_named_pipe_or_dev_zero_is_refused_not_read_forever(tmp_path, reader, suffix):
    """A FIFO blocks ``open`` until a writer comes, /dev/zero never ends: both are refused
    as not regular files, at once."""
    fifo = tmp_path / ("pipe" + suffix)
    os.mkfifo(fifo)
    zero = tmp_path / ("zero" + suffix)
    zero.symlink_to("/dev/zero")
    refused(f"path = {str(fifo)!r}\n{reader}", str(fifo), "named pipe", timeout=30)
    refused(f"path = {str(zero)!r}\n{reader}", str(zero), "character device", timeout=30)


def test_load_npz_refuses_a_symlink_to_dev_zero_before_hashing_it(tmp_path):
    zero = tmp_path / "w.npz"
    zero.symlink_to("/dev/zero")
    (tmp_path / "w.json").write_text(json.dumps({"format": "minicnn-weights", "sha256": "0"}))
    refused(f"import minicnn.io as m; m.load_npz({str(zero)!r})", str(zero),
            "character device", timeout=30)


def nested_key_pickle(depth):
    """``{t: 1}`` with ``t = (t', t')`` nested ``depth`` deep (the pickle's memo reuses each
    level, so the file is ~8 bytes a level and the key 2**depth items)."""
    out = bytearray(b"\x80\x02}X\x01\x00\x00\x00a\x85q\x000")      # {, 'a', TUPLE1, PUT 0, POP
    for i in range(depth):
        out += b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86q" + bytes([i + 1]) + b"0"
    return bytes(out + b"h" + bytes([depth]) + b"K\x01s.")         # GET, 1, SETITEM, STOP


@pytest.mark.parametrize("depth", [21, 28])
def test_a_state_dict_key_nested_deep_is_refused_quickly_in_one_short_line(tmp_path, depth):
    """Nested 28 deep, hashing the key while loading never ended; 21 deep the message held
    400,033 characters. The tuple's unfolded size is measured from the opcodes first."""
    path = tmp_path / "nested.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", nested_key_pickle(depth))
    refused(f"import minicnn.io as m; m.load_torch({str(path)!r})", str(path),
            "more than 100,000 items", timeout=30)


def test_a_real_checkpoint_passes_the_tuple_check(tmp_path):
    """The opcode scan accepts what torch writes (sizes and strides are small tuples)."""
    torch = pytest.importorskip("torch")
    state = {"a.weight": torch.randn(3, 2, 2, 2), "a.bias": torch.randn(3)}
    torch.save(state, tmp_path / "ok.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    import minicnn.io as mio
    for name in ("ok.pth", "legacy.pth"):
        got = mio.load_torch(tmp_path / name)
        assert np.array_equal(got["a.weight"], state["a.weight"].numpy())
