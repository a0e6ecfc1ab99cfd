"""What the engine's speed work rests on, beyond the conv roads (those are in test_conv.py)."""
import os

import pytest


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


_FREED_RSS = """
import os
import sys
import numpy as np
from minicnn import backend
took = backend.keep_freed_memory() if sys.argv[1] == "keep" else None

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

before = resident_mb()
a = np.ones(4 * 2**20, np.float32)       # 16 MB, every page written
del a
print(took, resident_mb() - before)
"""


def _linux_with_glibc():
    try:
        return os.path.exists("/proc/self/statm") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not _linux_with_glibc(), reason="needs Linux with glibc (/proc, mallopt)")
def test_keep_freed_memory_keeps_a_freed_array_in_the_process():
    """After keep_freed_memory a freed 16 MB array's pages stay with the process (the next
    array of that size reuses them, no fresh zero-filled pages); without it glibc hands
    them back at once. Each case in a process of its own: the setting is process-wide."""
    import subprocess
    import sys

    def kept_mb(mode):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        r = subprocess.run([sys.executable, "-c", _FREED_RSS, mode], capture_output=True,
                           text=True, check=True, cwd=root)
        took, mb = r.stdout.split()
        return took, float(mb)

    took, kept = kept_mb("keep")
    assert took == "True"
    assert kept > 12, f"only {kept:.1f} MB of the freed 16 MB stayed resident"
    _, default = kept_mb("default")
    assert default < 4, f"{default:.1f} MB stayed without keep_freed_memory"


def test_the_bench_catches_every_matrix_product_of_a_fashion_net_step():
    """The bench's 'matmuls alone' row replays _step_matmuls: for fashion_net its products
    must hold the step's whole arithmetic, forward, dW of the four convs, dx of the last
    three (the images need none) and the linear layers' three products each, 2·N·(F·C·kh·kw)·
    Ho·Wo per conv product, give or take the blocked road's dropped positions (≤ 15%)."""
    import numpy as np
    from minicnn import models, ops
    from minicnn.autograd import Tensor
    from minicnn.bench.models import _flops, _step_matmuls
    N = 8
    model = models.fashion_net()
    x = np.random.default_rng(0).standard_normal((N, 1, 28, 28)).astype(np.float32)

    def step():
        ops.cross_entropy(model(Tensor(x)), np.arange(N) % 10).backward()
        return N
    matmul = np.matmul
    products = _step_matmuls(model, step)
    flops = _flops(products)                        # the FLOP count the bench row prints
    convs = [(1, 16, 28), (16, 16, 28), (16, 32, 14), (32, 32, 14)]     # C, F, side
    conv = [2 * N * F * C * 9 * side ** 2 for C, F, side in convs]
    linear = [2 * N * 1568 * 128, 2 * N * 128 * 10]
    expected = 2 * sum(conv) + sum(conv[1:]) + 3 * sum(linear)
    assert expected <= flops <= 1.15 * expected, (flops, expected)
    assert np.matmul is matmul                      # put back after the step
