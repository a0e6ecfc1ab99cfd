"""Time minicnn's ops beside PyTorch CPU, in the same run, on the same inputs.

    python -c "from minicnn import bench; bench.run()"
    minicnn bench --only conv2d

Each section is a function registered in ``SECTIONS`` (name -> function); it
returns table rows made by ``compare``. A row times the minicnn call and the
PyTorch call alternately (the fastest of ``repeat`` runs each, after a warm-up:
load on a shared machine comes in bursts that can halve the speed of a whole
run, and the fastest run is the least disturbed one) and reports the ratio and,
when the FLOP count is known, the GFLOP/s achieved and its share of this
machine's float32 matmul rate (measured first: the ceiling for any op built on
one BLAS matmul).
PyTorch is optional and imported only here, inside functions.
"""
import importlib
import os
import pkgutil
import sys
import time

import numpy as np

__all__ = ["run", "SECTIONS", "section", "compare", "matmul_gflops"]

SECTIONS = {}   # section name -> fn(repeat) -> list of row dicts


def section(name):
    """Decorator: register a benchmark section under ``name``."""
    def register(fn):
        SECTIONS[name] = fn
        return fn
    return register


def _torch():
    """PyTorch if installed (the reference in benchmarks only), else None."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _fastest_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def compare(label, ours, theirs=None, flops=None, repeat=5):
    """One table row: time ``ours()`` and ``theirs()`` (either may be None) side by side.

    They run alternately, ``repeat`` times each after one warm-up call; each side's row
    time is its fastest run (the one the machine's other load disturbed least).
    """
    fns = [f for f in (ours, theirs) if f is not None]
    for f in fns:           # warm-up: allocations, BLAS threads, caches
        f()
    times = {id(f): [] for f in fns}
    for _ in range(repeat):  # alternate, so both see the same load
        for f in fns:
            times[id(f)].append(_fastest_ms(f, 1))
    ms = min(times[id(ours)])
    torch_ms = min(times[id(theirs)]) if theirs is not None else None
    return dict(label=label, ms=ms, torch_ms=torch_ms, flops=flops)


def matmul_gflops(n=2048, repeat=5):
    """This machine's float32 matmul rate (n×n @ n×n through NumPy's BLAS), GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    return 2 * n ** 3 / (1e-3 * _fastest_ms(lambda: np.matmul(a, b, out=out), repeat)) / 1e9


# -------------------------------------------------------------------- sections

CONV_SHAPES = [  # (N, C, H, W, F, k, pad)
    (64, 32, 32, 32, 64, 3, 1),
    (1, 64, 224, 224, 64, 3, 1),
    (1, 256, 56, 56, 256, 3, 1),
    (128, 1, 28, 28, 32, 5, 2),
]


def _fwd_bwd(fn, tensors, dout):
    """A step running forward and backward of fn(*tensors) (minicnn or torch), grads reset."""
    def step():
        for t in tensors:
            t.grad = None
        fn(*tensors).backward(dout)
    return step


@section("conv2d")
def bench_conv2d(repeat):
    """conv2d forward (no graph) and forward+backward (dx, dW, db), float32."""
    import minicnn as mc
    torch = _torch()
    rng = np.random.default_rng(0)
    rows = []
    for N, C, H, W, F, k, p in CONV_SHAPES:
        arrays = [rng.standard_normal(s).astype(np.float32)
                  for s in ((N, C, H, W), (F, C, k, k), (F,))]
        dout = np.ones((N, F, H, W), np.float32)
        flops = 2 * N * F * C * k * k * H * W       # stride 1, 'same' padding: Ho, Wo = H, W
        name = f"{N}x{C}x{H}x{W} -> {F}, {k}x{k} p{p}"

        ours = [mc.tensor(a) for a in arrays]
        ours_grad = [mc.tensor(a, requires_grad=True) for a in arrays]

        def ours_fwd():
            with mc.no_grad():
                mc.ops.conv2d(*ours, padding=p)
        ours_fwd_bwd = _fwd_bwd(lambda *t: mc.ops.conv2d(*t, padding=p), ours_grad, dout)
        torch_fwd = torch_fwd_bwd = None
        if torch is not None:
            conv = torch.nn.functional.conv2d
            theirs = [torch.from_numpy(a) for a in arrays]
            theirs_grad = [torch.from_numpy(a).requires_grad_() for a in arrays]

            def torch_fwd():
                with torch.no_grad():
                    conv(*theirs, padding=p)
            torch_fwd_bwd = _fwd_bwd(lambda *t: conv(*t, padding=p), theirs_grad,
                                     torch.from_numpy(dout))
        rows.append(compare(f"conv2d fwd      {name}", ours_fwd, torch_fwd, flops, repeat))
        rows.append(compare(f"conv2d fwd+bwd  {name}", ours_fwd_bwd, torch_fwd_bwd, 3 * flops,
                            repeat))
    return rows


DEPTHWISE_SHAPES = [  # (N, C, H, W, k, stride): EfficientNet-Lite0's depthwise layers at 224²
    (1, 32, 112, 112, 3, 1),
    (1, 144, 56, 56, 5, 2),
    (1, 480, 14, 14, 3, 1),
    (1, 1152, 7, 7, 5, 1),
    (16, 144, 28, 28, 3, 1),    # a batch: the explorer's and the gallery's batched maps
]


@section("depthwise_conv2d")
def bench_depthwise_conv2d(repeat):
    """Depthwise conv2d (groups = channels, one 'same' k×k filter per channel) forward
    (no graph) and forward+backward (dx, dW), float32."""
    import minicnn as mc
    torch = _torch()
    rng = np.random.default_rng(0)
    rows = []
    for N, C, H, W, k, s in DEPTHWISE_SHAPES:
        p = k // 2
        x, w = (rng.standard_normal(shape).astype(np.float32)
                for shape in ((N, C, H, W), (C, 1, k, k)))
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        dout = np.ones((N, C, Ho, Wo), np.float32)
        flops = 2 * N * C * k * k * Ho * Wo
        name = f"{N}x{C}x{H}x{W} {k}x{k} s{s}"
        conv = dict(stride=s, padding=p, groups=C)
        ours = [mc.tensor(x), mc.tensor(w)]
        ours_grad = [mc.tensor(x, requires_grad=True), mc.tensor(w, requires_grad=True)]

        def ours_fwd():
            with mc.no_grad():
                mc.ops.conv2d(*ours, **conv)
        ours_fwd_bwd = _fwd_bwd(lambda x, w: mc.ops.conv2d(x, w, **conv), ours_grad, dout)
        torch_fwd = torch_fwd_bwd = None
        if torch is not None:
            tconv = torch.nn.functional.conv2d
            theirs = [torch.from_numpy(x), torch.from_numpy(w)]
            theirs_grad = [torch.from_numpy(a).requires_grad_() for a in (x, w)]

            def torch_fwd():
                with torch.no_grad():
                    tconv(*theirs, **conv)
            torch_fwd_bwd = _fwd_bwd(lambda x, w: tconv(x, w, **conv), theirs_grad,
                                     torch.from_numpy(dout))
        rows.append(compare(f"depthwise fwd     {name}", ours_fwd, torch_fwd, flops, repeat))
        rows.append(compare(f"depthwise fwd+bwd {name}", ours_fwd_bwd, torch_fwd_bwd,
                            3 * flops, repeat))
    return rows


@section("max_pool2d")
def bench_max_pool2d(repeat):
    """max_pool2d 2×2 / 2 forward+backward on the first conv shape (when the op exists)."""
    import minicnn as mc
    if not hasattr(mc.ops, "max_pool2d"):
        return []
    torch = _torch()
    N, C, H, W = CONV_SHAPES[0][:4]
    x = np.random.default_rng(0).standard_normal((N, C, H, W)).astype(np.float32)
    dout = np.ones((N, C, H // 2, W // 2), np.float32)
    ours = _fwd_bwd(lambda t: mc.ops.max_pool2d(t, 2, 2), [mc.tensor(x, requires_grad=True)],
                    dout)
    theirs = None
    if torch is not None:
        theirs = _fwd_bwd(lambda t: torch.nn.functional.max_pool2d(t, 2, 2),
                          [torch.from_numpy(x).requires_grad_()], torch.from_numpy(dout))
    return [compare(f"max_pool2d 2x2 fwd+bwd {N}x{C}x{H}x{W}", ours, theirs, None, repeat)]


# ------------------------------------------------------------------------- run

def _format(row, peak):
    t = row["torch_ms"]
    cells = [f"{row['label']:<48}", f"{row['ms']:9.2f}",
             f"{t:9.2f}" if t is not None else f"{'-':>9}",
             f"{row['ms'] / t:6.2f}x" if t is not None else f"{'-':>7}"]
    if row["flops"]:
        gf = row["flops"] / (1e-3 * row["ms"]) / 1e9
        cells += [f"{gf:8.1f}", f"{100 * gf / peak:5.0f}%"]
    else:
        cells += [f"{'-':>8}", f"{'-':>6}"]
    return " ".join(cells)


def _load_section_modules():
    """Import every section module of ``minicnn/bench/``: each registers its sections with
    @section (reference_torch, opcheck and before_after are not sections)."""
    for info in pkgutil.iter_modules([os.path.dirname(os.path.abspath(__file__))]):
        if info.name not in ("core", "reference_torch", "opcheck", "before_after"):
            importlib.import_module(f"minicnn.bench.{info.name}")


def run(sections=None, repeat=5, file=sys.stdout):
    """Print the benchmark table for ``sections`` (names in SECTIONS; default: all)."""
    from ..backend import keep_freed_memory
    keep_freed_memory()             # as minicnn's commands run
    _load_section_modules()
    names = list(SECTIONS) if sections is None else list(sections)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown benchmark section(s) {unknown}; available: {list(SECTIONS)}")
    torch = _torch()
    peak = matmul_gflops(repeat=repeat)
    threads = f", torch threads {torch.get_num_threads()}" if torch is not None else \
        " (PyTorch not installed: minicnn times only)"
    print(f"float32 matmul 2048x2048 (NumPy BLAS): {peak:.1f} GFLOP/s{threads}", file=file)
    header = (f"{'op / shape':<48} {'minicnn':>9} {'torch':>9} {'ratio':>7} "
              f"{'GFLOP/s':>8} {'%mm':>6}")
    print(header, file=file)
    print("-" * len(header), file=file)
    for name in names:
        for row in SECTIONS[name](repeat):
            print(_format(row, peak), file=file, flush=True)


if __name__ == "__main__":
    run()
