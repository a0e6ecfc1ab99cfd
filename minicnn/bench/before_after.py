"""Time this checkout's minicnn against another checkout's, row by row, alternately.

    python -m minicnn.bench.before_after OTHER_CHECKOUT [--only SECTION,...] [--repeat R]

Whether a change made minicnn faster is a comparison of two versions of the engine on
the same machine at the same time: on a shared machine the load changes from minute to
minute, and two tables measured minutes apart differ more than most changes do.
So both versions run at once, each in a worker process of its own (both are called
``minicnn``), and every row of ``minicnn bench`` (minicnn's side: the work of the row)
is timed in the two workers in turn, ``repeat`` times; each side's time is its fastest
run. Both run this checkout's bench sections, copied over the other checkout's engine,
so the rows are the same work; a section the other engine cannot run is reported.
The table gives both times, after / before, and the load average as it went. Each worker
runs BLAS on one thread unless ``OPENBLAS_NUM_THREADS`` is set.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

__all__ = ["compare_checkouts"]

SKIP = ("tsne",)     # t-SNE's own timing (seconds per run, no conv engine); run it alone


# ----------------------------------------------------------------- worker side

def _reply(**message):
    print(json.dumps(message), flush=True)


def _worker():
    """Serve the driver on stdin/stdout. {"load": section} runs the section; at each of its
    rows it says {"label": ...} (after one warm-up run of the row) and times the row's
    minicnn side once per {"time": 1} ({"ms": ...}) until {"next": 1}; then {"done": 1}.
    The rows are timed while the section builds them (their closures see the loop's
    variables of that moment)."""
    from minicnn import backend
    from minicnn.bench import core
    keep = getattr(backend, "keep_freed_memory", None)   # each engine's memory as its
    if keep is not None:                                  # commands run it
        keep()
    core._load_section_modules()

    def record(label, ours, theirs=None, flops=None, repeat=5):
        ours()                                      # warm-up
        _reply(label=label)
        for line in sys.stdin:
            if "next" in json.loads(line):
                break
            t0 = time.perf_counter()
            ours()
            _reply(ms=1e3 * (time.perf_counter() - t0))
        return dict(label=label, ms=0.0, torch_ms=None, flops=flops)

    for module in list(sys.modules.values()):      # every section's own name for them
        if getattr(module, "__name__", "").startswith("minicnn.bench."):
            if hasattr(module, "compare"):
                module.compare = record
            if hasattr(module, "_torch"):
                module._torch = lambda: None        # minicnn's side only
    for line in sys.stdin:
        try:
            core.SECTIONS[json.loads(line)["load"]](1)
            _reply(done=1)
        except Exception as e:                      # noqa: BLE001 — reported, not fatal
            _reply(error=f"{type(e).__name__}: {e}")


# ----------------------------------------------------------------- driver side

class _Worker:
    def __init__(self, root):
        # One BLAS thread per worker unless the caller chose: two workers' OpenBLAS threads
        # compete for the cores, and rows of unchanged code then swung 0.55-1.58x (one
        # thread each: 0.91-1.05x).
        env = dict(os.environ, PYTHONPATH=root)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        self.proc = subprocess.Popen([sys.executable, "-c", "from minicnn.bench.before_after "
                                      "import _worker; _worker()"], env=env, cwd=root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **request):
        self.tell(**request)
        return self.hear()

    def tell(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def hear(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a benchmark worker ended unexpectedly (see its error above)")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _overlay(other, bench_dir, into):
    """A copy of the other checkout's package with this checkout's bench/ over it."""
    package = os.path.join(other, "minicnn")
    if not os.path.isfile(os.path.join(package, "__init__.py")):
        raise ValueError(f"before_after: {other!r} holds no minicnn package "
                         f"(looked for {package}/__init__.py)")
    shutil.copytree(package, os.path.join(into, "minicnn"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in os.listdir(bench_dir):
        if name.endswith(".py"):
            shutil.copy(os.path.join(bench_dir, name), os.path.join(into, "minicnn", "bench"))
    return into


def compare_checkouts(other, sections=None, repeat=5, file=sys.stdout):
    """Print the before (``other``) / after (this checkout) table of ``sections``' rows."""
    from .core import SECTIONS, _load_section_modules
    _load_section_modules()
    names = [n for n in SECTIONS if n not in SKIP] if sections is None else list(sections)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(f"before_after: unknown section(s) {unknown}; available: {list(SECTIONS)}")
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory() as tmp:
        before = _Worker(_overlay(other, os.path.dirname(os.path.abspath(__file__)), tmp))
        after = _Worker(here)
        try:
            print(f"{'row (minicnn side)':<50} {'before':>9} {'after':>9} {'after/before':>12}"
                  f"   load", file=file)
            for name in names:
                for worker in (before, after):
                    worker.tell(load=name)
                while True:
                    replies = before.hear(), after.hear()
                    if "label" not in replies[0] or "label" not in replies[1]:
                        break
                    label = replies[1]["label"]
                    times = {"before": [], "after": []}
                    for k in range(repeat):          # alternate, and who goes first
                        order = (("before", before), ("after", after))
                        for side, worker in order if k % 2 == 0 else order[::-1]:
                            times[side].append(worker.ask(time=1)["ms"])
                    b, a = min(times["before"]), min(times["after"])
                    print(f"{label:<50} {b:9.2f} {a:9.2f} {a / b:11.2f}x   "
                          f"{os.getloadavg()[0]:.1f}", file=file, flush=True)
                    for worker in (before, after):
                        worker.tell(next=1)
                if any("error" in r for r in replies) or replies[0] != replies[1]:
                    print(f"{name}: before {replies[0]}, after {replies[1]}", file=file)
                    for worker, reply in zip((before, after), replies):   # let both finish
                        while "label" in reply:
                            worker.tell(next=1)
                            reply = worker.hear()
        finally:
            before.close()
            after.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minicnn.bench.before_after",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("other", help="another checkout of minicnn (its root folder)")
    parser.add_argument("--only", help="comma-separated sections (default: all but t-SNE)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    compare_checkouts(args.other, args.only.split(",") if args.only else None, args.repeat)


if __name__ == "__main__":
    main()
