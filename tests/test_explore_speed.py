"""How ``minicnn explore`` keeps "Explain" and a click fast, each shortcut checked against the
technique it stands for (no browser needed; the timings themselves are printed by
``python -m minicnn.explore.bench``, never asserted here)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_THREADS = """
import json
from threadpoolctl import threadpool_info
from minicnn.explore.compute import limit_blas_threads
before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
now = limit_blas_threads()
after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
print(json.dumps({"before": before, "now": now, "after": after}))
"""


def _blas_threads(**env):
    """limit_blas_threads() in a fresh interpreter (the setting is per process) with the
    BLAS thread variables of ``env`` only."""
    pytest.importorskip("threadpoolctl", reason="pip install threadpoolctl")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    clean.update(env, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _THREADS], env=clean, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if not r["before"]:
        pytest.skip("threadpoolctl finds no BLAS library in NumPy")
    return r


def test_the_server_runs_blas_on_one_thread_unless_the_environment_names_a_count():
    """Many computations run side by side in the server; a multi-threaded BLAS slowed
    "Explain" threefold on two loaded cores. A count the user set in the environment wins."""
    r = _blas_threads()
    assert r["now"] == 1 and set(r["after"]) == {1}
    r = _blas_threads(OPENBLAS_NUM_THREADS="2")
    assert r["after"] == r["before"] and r["now"] == max(r["before"])
