"""Training loops and the recipes that made the shipped weights.

    fit(model, (x, y), test=(xt, yt), epochs=12, ...)   # any classifier
    train_recipe("fashion_net", out_dir="weights")       # what `minicnn train fashion_net` runs

The loop is the textbook one: shuffle, mini-batch, forward, cross-entropy,
backward, optimizer step; evaluation in ``no_grad`` + ``eval()`` mode. It is
deterministic given ``seed`` and resumable: after every epoch a checkpoint
(model, optimizer and RNG state) is written atomically, and ``resume=True``
continues from it exactly.
"""
import json
import os
import sys
import tempfile
import time

import numpy as np

from . import ops, optim
from .autograd import Tensor, no_grad
from .backend import as_backend, to_numpy
from .data import iterate_minibatches
from .images import random_crop_flip

__all__ = ["fit", "evaluate", "predict", "RECIPES", "train_recipe"]


def _progress(iterable, total, desc, enabled):
    try:
        from tqdm import tqdm
    except ImportError:                      # tqdm is a dependency, but stay usable without it
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=True,
                dynamic_ncols=True, file=sys.stderr)


def predict(model, x, batch_size=500):
    """Logits (N, K) as a NumPy array, computed in eval mode and batches."""
    model.eval()
    backend = next(iter(model.parameters())).backend
    out = []
    with no_grad():
        for i in range(0, len(x), batch_size):
            out.append(to_numpy(model(Tensor(as_backend(x[i:i + batch_size], backend))).data))
    return np.concatenate(out) if out else np.zeros((0, 0))


def evaluate(model, x, y, batch_size=500):
    """Top-1 accuracy in [0, 1]."""
    return float((predict(model, x, batch_size).argmax(axis=1) == np.asarray(y)).mean())


def _module_rngs(model):
    """Generators held by modules (Dropout): saved so a resumed run draws the same masks."""
    return {name: m.rng for name, m in model.named_modules() if hasattr(m, "rng")}


def _save_checkpoint(path, model, optimizer, epoch, rng, history):
    """Model, optimizer and RNG state after ``epoch``, written atomically to one .npz."""
    arrays = {f"model/{k}": to_numpy(v) for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars = {}
    for i, per_param in opt["state"].items():
        for k, v in per_param.items():
            if hasattr(v, "shape"):
                arrays[f"optim/{i}/{k}"] = to_numpy(v)
            else:
                scalars[f"{i}/{k}"] = v
    meta = {"epoch": epoch, "rng": rng.bit_generator.state, "history": history,
            "module_rngs": {n: g.bit_generator.state for n, g in _module_rngs(model).items()},
            "optimizer": {k: v for k, v in opt.items() if k != "state"}, "optimizer_scalars": scalars}
    arrays["meta"] = np.array(json.dumps(meta))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _load_checkpoint(path, model, optimizer, rng):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        model.load_state_dict({k[len("model/"):]: z[k] for k in z.files if k.startswith("model/")})
        state = {}
        for key, v in meta["optimizer_scalars"].items():
            i, k = key.split("/")
            state.setdefault(int(i), {})[k] = v
        for key in z.files:
            if key.startswith("optim/"):
                _, i, k = key.split("/")
                state.setdefault(int(i), {})[k] = z[key]
        optimizer.load_state_dict({**meta["optimizer"], "state": state})
    rng.bit_generator.state = meta["rng"]
    for name, g in _module_rngs(model).items():
        g.bit_generator.state = meta["module_rngs"][name]
    return meta["epoch"], meta["history"]


def fit(model, train, test=None, *, epochs, batch_size=128, lr=1e-3, optimizer="adam",
        weight_decay=0.0, augment=None, seed=0, checkpoint=None, resume=False, progress=True,
        stop_after=None):
    """Train ``model`` on ``train = (x, y)`` (x preprocessed float32 NCHW, y int labels).

    optimizer: "adam" or "sgd" (momentum 0.9, nesterov); the learning rate follows a
    cosine schedule from ``lr`` to 0 over all steps. augment: None or
    ``{"pad": 4, "flip": True}`` (random crop + horizontal flip, per batch).
    checkpoint / resume: write a checkpoint after every epoch / continue from it.
    stop_after: end this call after that many epochs (resume later: the schedule and the
    random streams continue exactly as in one uninterrupted run).
    Returns the history: a list of per-epoch dicts (loss, train_acc, test_acc, seconds).
    """
    x, y = train
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    if optimizer == "adam":
        opt = optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        raise ValueError(f"fit: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    steps_per_epoch = -(-len(x) // batch_size)
    total_steps = epochs * steps_per_epoch
    start, history = 0, []
    if resume and checkpoint and os.path.exists(checkpoint):
        start, history = _load_checkpoint(checkpoint, model, opt, rng)
        print(f"resuming from {checkpoint} after epoch {start}", file=sys.stderr)
    backend = params[0].backend

    end = epochs if stop_after is None else min(epochs, start + stop_after)
    for epoch in range(start, end):
        model.train()
        t0, seen, loss_sum, correct = time.time(), 0, 0.0, 0
        batches = _progress(iterate_minibatches(len(x), batch_size, shuffle=True, rng=rng),
                            steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress)
        for step, idx in enumerate(batches):
            xb = x[idx]
            if augment:
                xb = random_crop_flip(xb, pad=augment.get("pad", 4), rng=rng,
                                      flip=augment.get("flip", True))
            t = epoch * steps_per_epoch + step
            opt.lr = 0.5 * lr * (1 + np.cos(np.pi * t / total_steps))
            logits = model(Tensor(as_backend(np.ascontiguousarray(xb), backend)))
            yb = as_backend(y[idx], backend)
            loss = ops.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n = len(idx)
            seen += n
            loss_sum += float(loss.item()) * n
            correct += int((to_numpy(logits.data).argmax(1) == y[idx]).sum())
            if progress and hasattr(batches, "set_postfix") and step % 20 == 0:
                batches.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        record = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": correct / seen,
                  "seconds": round(time.time() - t0, 1)}
        if test is not None:
            record["test_acc"] = evaluate(model, *test)
        history.append(record)
        print(json.dumps(record), file=sys.stderr)
        if checkpoint:
            _save_checkpoint(checkpoint, model, opt, epoch + 1, rng, history)
    model.eval()
    return history


# ------------------------------------------------------------------- recipes

RECIPES = {
    "fashion_net": dict(dataset="fashion_mnist", epochs=15, batch_size=128, lr=2e-3,
                        optimizer="adam", augment={"pad": 2, "flip": True}),
    "cifar_net": dict(dataset="cifar10", epochs=20, batch_size=128, lr=2e-3,
                      optimizer="adam", augment={"pad": 4, "flip": True}),
}


CHECK_SUBSET = 2000   # the manifest also records accuracy on this many test images (a quick check)


def _dataset(name, root):
    from . import data
    if name == "fashion_mnist":
        (xtr, ytr), (xte, yte) = (data.load_fashion_mnist(s, root=root) for s in ("train", "test"))
        return xtr, ytr, xte, yte, data.FASHION_MNIST_CLASSES, "Fashion-MNIST test set"
    (xtr, ytr), (xte, yte) = (data.load_cifar10(s, root=root) for s in ("train", "test"))
    return xtr, ytr, xte, yte, data.CIFAR10_CLASSES, "CIFAR-10 test set"


def _chain_seconds(started_from):
    """Training seconds of every earlier cycle recorded in a ``started_from`` chain."""
    total = 0.0
    while started_from:
        total += sum(h.get("seconds", 0) for h in started_from.get("history") or [])
        started_from = started_from.get("started_from")
    return total


def train_recipe(name, out_dir="weights", data_root=None, epochs=None, seed=0, resume=False,
                 checkpoint_dir=None, progress=True, command=None, lr=None, init=None):
    """Train a shipped model by its recipe and save ``<out_dir>/<name>.npz`` + manifest.

    epochs / lr override the recipe's. init: a minicnn weights file (.npz + manifest) of
    the same architecture to start from instead of random weights — a warm restart:
    a fresh optimizer and a new cosine cycle. The new manifest keeps the starting file's
    sha256, command and history, so the whole chain that made the weights is recorded.
    """
    from . import io, models
    if name not in RECIPES:
        raise ValueError(f"train: no recipe for {name!r}; known: {sorted(RECIPES)}")
    recipe = dict(RECIPES[name])
    if epochs is not None:
        recipe["epochs"] = epochs
    if lr is not None:
        if not lr > 0:
            raise ValueError(f"train: lr must be > 0, got {lr}")
        recipe["lr"] = lr
    model = getattr(models, name)(pretrained=False, seed=seed)
    started_from = None
    if init is not None:
        state, init_meta = io.load_npz(init, expected_arch=name)
        model.load_state_dict(state)
        prov = init_meta.get("provenance") or {}
        started_from = {"file": os.path.basename(os.fspath(init)), "sha256": init_meta["sha256"],
                        "accuracy": (init_meta.get("accuracy") or {}).get("value"),
                        "command": prov.get("command"), "recipe": prov.get("recipe"),
                        "history": prov.get("history"), "note": prov.get("note"),
                        "started_from": prov.get("started_from")}
    xtr, ytr, xte, yte, labels, test_name = _dataset(recipe.pop("dataset"), data_root)
    pre = model.preprocess
    xtr, xte = pre.preprocess(xtr), pre.preprocess(xte)
    ckpt_dir = checkpoint_dir or os.path.join(io.cache_dir(), "train")
    tag = f"-from-{started_from['sha256'][:12]}" if started_from else ""
    checkpoint = os.path.join(ckpt_dir, f"{name}-seed{seed}{tag}.ckpt.npz")
    t0 = time.time()
    history = fit(model, (xtr, ytr), (xte, yte), seed=seed, checkpoint=checkpoint,
                  resume=resume, progress=progress, **recipe)
    acc = history[-1]["test_acc"]
    n_check = min(CHECK_SUBSET, len(yte))
    meta = {
        "architecture": name,
        "preprocessing": pre.to_dict(),
        "labels": list(labels),
        "accuracy": {"value": acc, "on": f"{test_name}, {len(yte)} images",
                     "subset_value": evaluate(model, xte[:n_check], yte[:n_check]),
                     "subset": f"the first {n_check} images of the {test_name}"},
        "provenance": {"command": command or f"minicnn train {name} --seed {seed}",
                       "recipe": {**RECIPES[name], "epochs": recipe["epochs"], "lr": recipe["lr"],
                                  "seed": seed},
                       "train_seconds_this_run": round(time.time() - t0),
                       "train_seconds_total": round(sum(h["seconds"] for h in history)),
                       "history": history,
                       "made_by": "minicnn.training.fit (NumPy backend)"},
    }
    if started_from:
        meta["provenance"]["started_from"] = started_from
        meta["provenance"]["train_seconds_all_cycles"] = round(
            meta["provenance"]["train_seconds_total"] + _chain_seconds(started_from))
    os.makedirs(out_dir, exist_ok=True)
    state = {k: to_numpy(v) for k, v in model.state_dict().items()}
    path = os.path.join(out_dir, f"{name}.npz")
    io.save_npz(path, state, meta)
    return path, history
