"""t-SNE timing and quality beside scikit-learn's Barnes-Hut t-SNE, on the same data.

    python -m minicnn.bench.embedding                 # 2,000 / 5,000 / 10,000 points
    python -m minicnn.bench.embedding 2000 5000

Data: 64-D points from 20 Gaussian clusters in a 10-D latent space, mapped linearly
to 64-D plus isotropic noise (a seed fixes everything). Both runs: 1,000 iterations,
perplexity 30, early exaggeration 12 for 250 iterations, learning rate "auto", PCA
initialisation; minicnn with method="auto" (the exact O(N²) gradient up to
``EXACT_MAX_POINTS``, FFT-interpolated repulsion above) and, at 2,000 points, the exact
path explicitly too (the target there: within 2× of scikit-learn). Trustworthiness
T(10) of both embeddings is computed by ``minicnn.techniques.embedding.trustworthiness``. scikit-learn is optional (it is not a
dependency of minicnn) and imported only here, inside functions.
"""
import sys
import time

import numpy as np

from minicnn.bench import section

SIZES = (2000, 5000, 10000)


def synthetic_features(n, dim=64, clusters=20, latent=10, seed=0):
    """(n, dim) float32 points: Gaussian clusters in a ``latent``-D space, linearly lifted."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.standard_normal((clusters, latent))
    labels = rng.integers(0, clusters, n)
    z = centres[labels] + rng.standard_normal((n, latent))
    x = z @ rng.standard_normal((latent, dim)) + 0.5 * rng.standard_normal((n, dim))
    return x.astype(np.float32), labels


def _sklearn_tsne():
    try:
        from sklearn.manifold import TSNE
        return TSNE
    except ImportError:
        return None


def _timed(fn):
    """(result, wall seconds, CPU seconds of all the process's threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def tsne_rows(sizes=SIZES, k=10, seed=0, file=sys.stdout):
    """Run both t-SNEs per size; print and return rows (label, seconds, cpu, trust).

    Wall time is what a user waits; CPU time (summed over threads) is what the machine
    spent — on a busy machine the two differ, and threads wait on each other."""
    from minicnn.techniques.embedding import trustworthiness
    from minicnn.techniques.tsne import tsne
    TSNE = _sklearn_tsne()
    rows = []
    print(f"{'t-SNE, 1000 iterations, perplexity 30':<40} {'wall s':>8} {'CPU s':>8} {'T(10)':>7}",
          file=file)
    for n in sizes:
        X, _ = synthetic_features(n, seed=seed)
        methods = ["auto"] + (["exact"] if n <= 2000 else [])
        for method in methods:
            Y, sec, cpu = _timed(lambda: tsne(X, perplexity=30, n_iter=1000, method=method,
                                              seed=seed, progress=False, return_info=True))
            label = f"minicnn {Y[1]['method']:<5} N={n}" + (" (auto)" if method == "auto" else "")
            rows.append(dict(label=label, seconds=sec, cpu=cpu, trust=trustworthiness(X, Y[0], k)))
            _print_row(rows[-1], file)
        if TSNE is not None:
            tsk = TSNE(2, perplexity=30, max_iter=1000, method="barnes_hut", angle=0.5,
                       init="pca", learning_rate="auto", early_exaggeration=12, random_state=seed)
            Y, sec, cpu = _timed(lambda: tsk.fit_transform(X))
            label = f"sklearn barnes_hut N={n}"
            rows.append(dict(label=label, seconds=sec, cpu=cpu, trust=trustworthiness(X, Y, k)))
            _print_row(rows[-1], file)
    if TSNE is None:
        print("(scikit-learn not installed: minicnn only; pip install scikit-learn to compare)",
              file=file)
    return rows


def _print_row(r, file):
    print(f"{r['label']:<40} {r['seconds']:8.1f} {r['cpu']:8.1f} {r['trust']:7.4f}", file=file,
          flush=True)


@section("tsne")
def bench_tsne(repeat):
    """Rows for ``minicnn.bench.run``: minicnn's time beside sklearn's in the 'torch' column."""
    rows = tsne_rows(file=_Null())
    sk = {r["label"].split("N=")[1]: r for r in rows if r["label"].startswith("sklearn")}
    out = []
    for r in rows:
        if r["label"].startswith("minicnn"):
            other = sk.get(r["label"].split("N=")[1].split()[0])
            label = f"t-SNE {r['label'][8:]} T {r['trust']:.3f}" + \
                (f" / sk {other['trust']:.3f}" if other else "")
            out.append(dict(label=label, ms=1e3 * r["seconds"],
                            torch_ms=1e3 * other["seconds"] if other else None, flops=None))
    return out


class _Null:
    def write(self, s):
        pass

    def flush(self):
        pass


if __name__ == "__main__":
    tsne_rows([int(a) for a in sys.argv[1:]] or SIZES)
