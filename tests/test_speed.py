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
