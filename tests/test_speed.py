"""What the engine's speed rests on, beyond the conv roads (those are in test_conv.py)."""
import os
import platform

import numpy as np
import pytest

from minicnn.backend import keep_freed_memory


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="keep_freed_memory tunes glibc's malloc; elsewhere it is a no-op")
def test_keep_freed_memory_keeps_a_freed_array_for_the_next_one():
    """After keep_freed_memory a freed 64 MB array stays with the process (its pages are
    reused by the next array of that size instead of being zero-filled again by the
    system): the resident size does not drop when it is freed."""
    assert keep_freed_memory() is True
    a = np.ones(16 << 20, dtype=np.float32)        # 64 MB, every page written
    with_a = _resident_bytes()
    del a
    assert _resident_bytes() > with_a - (16 << 20)  # at most a quarter of it went back


def test_the_depthwise_bench_rows_time_the_depthwise_road():
    """Every shape of the depthwise_conv2d bench section takes the depthwise road (the rows
    measure the road they are named after), in both memory layouts of its rows."""
    from minicnn.bench.core import DEPTHWISE_SHAPES
    from minicnn.ops.conv_depthwise import PhaseRows
    from minicnn.ops.conv_fast import choose_road
    layouts = set()
    for N, C, H, W, k, s in DEPTHWISE_SHAPES:
        road = choose_road((N, C, H, W), (C, 1, k, k), stride=(s, s), padding=(k // 2, k // 2),
                           groups=C)
        assert road.name == "depthwise"
        layouts.add(PhaseRows((N, C, H, W), (k // 2,) * 2, (s, s), (k, k)).channels_last)
    assert layouts == {False, True}


def test_before_after_times_every_row_in_both_checkouts():
    """bench.before_after against this same checkout: one line per row of the section with
    a time from each worker and their ratio (the table a change's speed-up is read from)."""
    import io
    from minicnn.bench.before_after import compare_checkouts
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = io.StringIO()
    compare_checkouts(root, ["max_pool2d"], repeat=1, file=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["row", "(minicnn", "side)"]
    assert len(lines) == 2 and lines[1].startswith("max_pool2d 2x2 fwd+bwd")
    before, after, ratio = (float(v.rstrip("x")) for v in lines[1].split()[-4:-1])
    assert before > 0 and after > 0 and abs(ratio - after / before) < 0.01 + 0.01 * ratio
