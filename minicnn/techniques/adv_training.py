"""Adversarial training as a defence (Goodfellow et al. 2015; Madry et al. 2018).

    history = adversarial_fit(model, (x, y), eps=0.1, attack="pgd", steps=3, epochs=1)
    robustness(model, x_test, y_test, eps_list=(0.1, 8/255))   # {"clean": a, 0.1: a', ...}

Each mini-batch is attacked against the *current* weights, then the model learns from both:

    x_adv = attack(model, x, y, ε)                         FGSM, or PGD-k with a random start
    L = (1 − m)·CE(f(x), y) + m·CE(f(x_adv), y)            m = ``mix`` (Goodfellow: 0.5;
                                                           Madry: 1, adversarial only)

The attack runs with the model in eval mode (dropout off), the update in train mode.
Robust accuracy is the accuracy on PGD examples (ε in [0, 1] pixel units, as everywhere
in ``adversarial``), which upper-bounds the accuracy under the strongest attack.
"""
import json
import sys

import numpy as np

from .. import ops
from ..nn import optim
from ..autograd import Tensor
from ..backend import as_backend, to_numpy
from ..data import iterate_minibatches
from ..training.loop import evaluate
from .adversarial import _check_eps, fgsm, pgd

__all__ = ["adversarial_fit", "robust_accuracy", "robustness"]


def _attack(model, x, y, eps, attack, steps, alpha, seed):
    if attack == "fgsm":
        return fgsm(model, x, y, eps)
    return pgd(model, x, y, eps, steps=steps, alpha=alpha, random_start=True, seed=seed)


def adversarial_fit(model, train, *, eps, attack="pgd", steps=3, alpha=None, mix=0.5,
                    epochs=1, batch_size=128, lr=1e-4, seed=0, progress=True):
    """Fine-tune (or train) ``model`` on ``train = (x, y)`` (x preprocessed NCHW) with
    adversarial examples mixed in. attack: "fgsm" or "pgd" (``steps``, step ``alpha``).
    Adam at a constant ``lr``. Returns the history: one dict per epoch (loss, clean_acc and
    adv_acc on the training batches as they were seen, seconds)."""
    import time
    from tqdm.auto import tqdm
    eps = _check_eps(eps)
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack must be 'fgsm' or 'pgd', got {attack!r}")
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    x, y = train
    y = np.asarray(y, np.int64)
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    opt = optim.Adam(params, lr=lr)
    backend = params[0].backend
    history = []
    for epoch in range(epochs):
        t0, seen, loss_sum, clean_ok, adv_ok = time.time(), 0, 0.0, 0, 0
        batches = tqdm(list(iterate_minibatches(len(x), batch_size, shuffle=True, rng=rng)),
                       disable=not progress, desc=f"adversarial epoch {epoch + 1}/{epochs}")
        for idx in batches:
            xb, yb = np.ascontiguousarray(x[idx]), y[idx]
            xa = _attack(model, xb, yb, eps, attack, steps, alpha, int(rng.integers(2 ** 31)))
            model.train()
            both = Tensor(as_backend(np.concatenate([xb, xa]).astype(xb.dtype), backend))
            logits = model(both)
            labels = as_backend(np.concatenate([yb, yb]), backend)
            per = ops.cross_entropy(logits, labels, reduction="none")
            n = len(idx)
            loss = per[:n].mean() * (1 - mix) + per[n:].mean() * mix
            opt.zero_grad()
            loss.backward()
            opt.step()
            pred = to_numpy(logits.data).argmax(axis=1)
            seen += n
            loss_sum += float(loss.item()) * n
            clean_ok += int((pred[:n] == yb).sum())
            adv_ok += int((pred[n:] == yb).sum())
        record = dict(epoch=epoch + 1, loss=loss_sum / seen, clean_acc=clean_ok / seen,
                      adv_acc=adv_ok / seen, seconds=round(time.time() - t0, 1))
        history.append(record)
        if progress:
            print(json.dumps(record), file=sys.stderr)
    model.eval()
    return history


def robust_accuracy(model, x, y, eps, *, steps=10, alpha=None, norm="inf", random_start=True,
                    seed=0, batch_size=256):
    """Top-1 accuracy on PGD examples (ε in pixel units) made for each image of x, y."""
    y = np.asarray(y, np.int64)
    correct = 0
    for i in range(0, len(x), batch_size):
        xa = pgd(model, x[i:i + batch_size], y[i:i + batch_size], eps, steps=steps, alpha=alpha,
                 norm=norm, random_start=random_start, seed=seed + i)
        correct += int((_predict(model, xa) == y[i:i + batch_size]).sum())
    return correct / len(x)


def _predict(model, x):
    from ..training.loop import predict
    return predict(model, x).argmax(axis=1)


def robustness(model, x, y, eps_list=(0.1, 8 / 255), **options):
    """{"clean": accuracy, ε: PGD robust accuracy for each ε} (options as robust_accuracy)."""
    out = {"clean": evaluate(model, x, y)}
    for eps in eps_list:
        out[float(eps)] = robust_accuracy(model, x, y, eps, **options)
    return out
