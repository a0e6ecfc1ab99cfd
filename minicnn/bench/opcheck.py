"""Gradient-check every built-in op: what ``minicnn gradcheck`` prints.

Each case is (name, fn, input shapes); inputs are float64 with magnitudes in
[0.5, 1.5] and random signs — away from ReLU kinks and from the poles of
log / div — and max-pool inputs are distinct values, so no pooling window has
a tie. The table shows the op, the input shapes, the max relative error of
``minicnn.gradcheck.check`` and pass/fail.
"""
import time
from typing import NamedTuple

import numpy as np

from .. import ops
from ..gradcheck import check

__all__ = ["CASES", "OpCheck", "run_all", "format_table"]


def _away_from_zero(rng, shape):
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def _distinct(rng, shape):
    """Distinct values spaced ≥ 0.05 apart: finite differences never swap a max."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.05 - n * 0.025).astype(np.float64)


def _labels(rng, shape, k):
    return rng.integers(0, k, shape)


def _cases():
    c = {}
    c["add"] = (lambda a, b: a + b, [(3, 4), (1, 4)])
    c["sub"] = (lambda a, b: a - b, [(3, 4), (3, 1)])
    c["mul"] = (lambda a, b: a * b, [(3, 4), (4,)])
    c["div"] = (lambda a, b: a / b, [(3, 4), (3, 4)])
    c["pow"] = (lambda a: ops.pow(a, 3), [(3, 4)])
    c["exp"] = (ops.exp, [(3, 4)])
    c["log"] = (lambda a: ops.log(a * a), [(3, 4)])
    c["sqrt"] = (lambda a: ops.sqrt(a * a), [(3, 4)])
    c["sum"] = (lambda a: a.sum(axis=1), [(2, 3, 4)])
    c["mean"] = (lambda a: a.mean(axis=(0, 2)), [(2, 3, 4)])
    c["reshape/flatten"] = (ops.flatten, [(2, 3, 2, 2)])
    c["transpose"] = (lambda a: ops.transpose(a, 1, 2, 0), [(2, 3, 4)])
    c["concat"] = (lambda a, b: ops.concat([a, b], axis=1), [(2, 3, 4), (2, 2, 4)])
    c["pad"] = (lambda a: ops.pad(a, (1, 0, 2, 1)), [(1, 2, 3, 3)])
    c["getitem"] = (lambda a: a[1:, ::2], [(3, 4)])
    c["linear"] = (ops.linear, [(5, 6), (3, 6), (3,)])
    c["relu"] = (ops.relu, [(3, 4)])
    c["relu6"] = (lambda a: ops.relu6(a * 4.0 + 1.0), [(3, 4)])
    c["sigmoid"] = (ops.sigmoid, [(3, 4)])
    c["tanh"] = (ops.tanh, [(3, 4)])
    c["conv2d"] = (lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1),
                   [(2, 3, 7, 7), (4, 3, 3, 3), (4,)])
    c["conv2d groups"] = (lambda x, w: ops.conv2d(x, w, groups=2, padding=1),
                          [(1, 4, 5, 5), (6, 2, 3, 3)])
    c["conv2d depthwise"] = (lambda x, w: ops.conv2d(x, w, groups=3, stride=2, padding=1),
                             [(1, 3, 6, 6), (3, 1, 3, 3)])
    c["conv_transpose2d"] = (lambda x, w, b: ops.conv_transpose2d(
        x, w, b, stride=2, padding=1, output_padding=1), [(2, 3, 4, 4), (3, 2, 3, 3), (2,)])
    c["max_pool2d"] = (lambda x: ops.max_pool2d(x, 3, 2, ceil_mode=True), [("distinct", (2, 2, 7, 7))])
    c["max_unpool2d"] = None   # built below: needs indices from a pooling pass
    c["avg_pool2d"] = (lambda x: ops.avg_pool2d(x, 3, 2, padding=1), [(2, 2, 7, 7)])
    c["adaptive_avg_pool2d"] = (lambda x: ops.adaptive_avg_pool2d(x, (3, 2)), [(2, 2, 7, 5)])
    c["softmax"] = (lambda x: ops.softmax(x, axis=1), [(3, 5)])
    c["log_softmax"] = (lambda x: ops.log_softmax(x, axis=1), [(3, 5)])
    c["cross_entropy"] = (lambda x: ops.cross_entropy(x, np.array([0, 4, 2])), [(3, 5)])
    c["binary_logistic_loss"] = (lambda s: ops.binary_logistic_loss(s, np.array([0.0, 1.0, 1.0])), [(3,)])
    c["mse"] = (lambda a, b: ops.mse(a, b), [(3, 4), (3, 4)])
    c["batch_norm (train)"] = (lambda x, g, b: ops.batch_norm(
        x, g, b, np.zeros(3), np.ones(3), training=True), [(4, 3, 2, 2), (3,), (3,)])
    c["batch_norm (eval)"] = (lambda x, g, b: ops.batch_norm(
        x, g, b, np.full(3, 0.1), np.full(3, 2.0), training=False), [(4, 3, 2, 2), (3,), (3,)])
    c["dropout"] = (lambda x: ops.dropout(x, 0.5, training=True, rng=np.random.default_rng(7)),
                    [(3, 4)])
    c["gram_matrix"] = (ops.gram_matrix, [(2, 3, 4, 4)])
    c["total_variation"] = (ops.total_variation, [(1, 3, 4, 5)])
    return c


CASES = _cases()


def _inputs(rng, shapes):
    out = []
    for s in shapes:
        if isinstance(s[0], str):
            out.append(_distinct(rng, s[1]))
        else:
            out.append(_away_from_zero(rng, s))
    return out


def _unpool_case(rng):
    x = _distinct(rng, (2, 2, 6, 6))
    _, idx = ops.max_pool2d(x, 2, 2, return_indices=True)
    return (lambda y: ops.max_unpool2d(y, idx, (6, 6))), [_away_from_zero(rng, (2, 2, 3, 3))]


class OpCheck(NamedTuple):
    """One row of ``run_all``: the op, its input shapes, the check's result and its time."""
    name: str
    shapes: str
    max_error: float
    ok: bool
    seconds: float


def run_all(seed=0, names=None):
    """Run every case (or only ``names``); returns OpCheck rows (name, shapes, max relative
    error, ok, seconds). An unknown name is a ValueError listing the valid ones."""
    if names is not None:
        names = [n.strip() for n in names]
        unknown = [n for n in names if n not in CASES]
        if unknown or not names:
            raise ValueError(f"gradcheck: no op named {', '.join(map(repr, unknown)) or 'at all'}"
                             f"; valid names: {', '.join(CASES)}")
    rng = np.random.default_rng(seed)
    rows = []
    for name, case in CASES.items():
        if names is not None and name not in names:
            continue
        if name == "max_unpool2d":
            fn, inputs = _unpool_case(rng)
        else:
            fn, shapes = case
            inputs = _inputs(rng, shapes)
        t0 = time.perf_counter()
        report = check(fn, inputs)
        rows.append(OpCheck(name, " ".join(str(tuple(a.shape)) for a in inputs),
                            report.max_error, report.ok, time.perf_counter() - t0))
    return rows


def format_table(rows):
    head = f"{'op':<22} {'input shapes':<40} {'max rel. error':>14}  result"
    lines = [head, "-" * len(head)]
    for name, shapes, err, ok, _ in rows:
        lines.append(f"{name:<22} {shapes:<40} {err:>14.2e}  {'pass' if ok else 'FAIL'}")
    n_ok = sum(r.ok for r in rows)
    lines.append(f"{n_ok} passed, {len(rows) - n_ok} failed")
    return "\n".join(lines)
