"""Training loops and the recipes that made the shipped weights.

    fit(model, (x, y), test=(xt, yt), epochs=12, ...)   # any classifier
    train_recipe("fashion_net")              # what `minicnn train fashion_net` runs: writes
                                             # cache_dir()/trained/fashion_net.npz + .json

The loop is the textbook one: shuffle, mini-batch, forward, cross-entropy,
backward, optimizer step; evaluation in ``no_grad`` + ``eval()`` mode. It is
deterministic given ``seed`` and resumable: after every epoch, every few minutes
inside an epoch and on Ctrl-C, a checkpoint (model, optimizer and RNG state, and
the place in the epoch) is written atomically, and ``resume=True`` continues from
it exactly. A loss that stops being finite ends the run (``TrainingDiverged``)
before anything is written.

Where ``train_recipe`` writes: ``--out`` (default ``cache_dir()/trained``, which
``pretrained=True`` does not read). The shipped files in weights/ are replaced
only with ``replace_shipped=True``, and no file is ever replaced by weights that
are not finite or score lower than it (those are kept beside it as
``<name>.candidate.npz``).
"""
import contextlib
import json
import math
import operator
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import ops
from .nn import optim
from .autograd import Tensor, no_grad
from .backend import as_backend, to_numpy
from .data import iterate_minibatches
from .data.images import random_crop_flip

__all__ = ["fit", "run_epochs", "evaluate", "predict", "RECIPES", "train_recipe",
           "TrainingDiverged", "TrainingInterrupted", "NotReplaced", "check_epochs", "check_lr",
           "default_out_dir", "prepare_output", "save_result"]


class TrainingDiverged(ValueError):
    """The loss (or a weight) stopped being finite: the learning rate is too large."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``fit``: the checkpoint holding the run so far was saved at ``checkpoint``."""

    def __init__(self, message, checkpoint):
        super().__init__(message)
        self.checkpoint = checkpoint


class NotReplaced(RuntimeError):
    """A finished run scored lower than the file it would replace: that file is kept and the
    new weights are saved beside it (``candidate``)."""

    def __init__(self, message, candidate):
        super().__init__(message)
        self.candidate = candidate


def check_epochs(epochs, who="train"):
    """``epochs`` as a positive int (NumPy ints too), or a ValueError naming the argument."""
    try:
        n = operator.index(epochs)
    except TypeError:
        raise ValueError(f"{who}: epochs must be a positive int, got {epochs!r}") from None
    if isinstance(epochs, bool) or n < 1:
        raise ValueError(f"{who}: epochs must be a positive int (at least 1), got {epochs!r}")
    return n


def check_lr(lr, who="train"):
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"{who}: lr must be a finite number > 0, got {lr!r}")
    return float(lr)


@contextlib.contextmanager
def _ctrl_c_between_steps():
    """Inside the block a first Ctrl-C only sets a flag (``stop["requested"]``): the loop
    finishes the step it is in, so the checkpoint never holds a half-applied update. A
    second Ctrl-C interrupts at once. Outside the main thread nothing changes."""
    stop = {"requested": False}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _all_finite(model):
    xp_ok = True
    for p in model.parameters():
        xp_ok = xp_ok and bool(np.isfinite(to_numpy(p.data)).all())
    return xp_ok


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


def _rng_states(model, rng):
    modules = {n: g.bit_generator.state for n, g in _module_rngs(model).items()}
    return rng.bit_generator.state, modules


def _set_rng_states(model, rng, states):
    rng.bit_generator.state = states[0]
    for name, g in _module_rngs(model).items():
        g.bit_generator.state = states[1][name]


def _save_checkpoint(path, model, optimizer, epoch, rng, history, partial=None):
    """Model, optimizer and RNG state after ``epoch`` (plus, inside an epoch, ``partial``:
    the epoch's batch order and the steps done), written atomically to one .npz."""
    if not _all_finite(model):
        raise TrainingDiverged(f"training diverged: a weight is NaN or inf after epoch {epoch}; "
                               f"no checkpoint written (lower the learning rate)")
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
    if partial is not None:
        arrays["partial/order"] = np.asarray(partial["order"])
        meta["partial"] = {k: v for k, v in partial.items() if k != "order"}
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
    """Restore what ``_save_checkpoint`` wrote -> (epochs done, history, partial or None)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        partial = meta.get("partial")
        if partial is not None:
            partial = {**partial, "order": z["partial/order"]}
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
    return meta["epoch"], meta["history"], partial


def run_epochs(model, opt, rng, n, forward, finish_epoch, *, epochs, batch_size, lr,
               checkpoint=None, resume=False, progress=True, stop_after=None,
               checkpoint_every=300.0, print_records=True, postfix_every=20):
    """The loop every fit shares: shuffle, mini-batches, cosine schedule, backward, step.

    forward(idx) -> (loss Tensor, units counted, units right) for the examples ``idx``;
    finish_epoch(epoch, totals) -> the epoch's record (totals: seen, loss_sum, correct,
    seconds, cpu_seconds). Checkpoints (model, optimizer, random streams and the place in
    the epoch) are written after every epoch, every ``checkpoint_every`` seconds inside one
    and on Ctrl-C, which then raises ``TrainingInterrupted``; ``resume`` continues from the
    checkpoint exactly. A non-finite loss raises ``TrainingDiverged``. Returns the history.
    """
    steps_per_epoch = -(-n // batch_size)
    total_steps = epochs * steps_per_epoch
    start, history, partial = 0, [], None
    if resume and checkpoint and os.path.exists(checkpoint):
        start, history, partial = _load_checkpoint(checkpoint, model, opt, rng)
        where = f" and {partial['step']} steps of epoch {start + 1}" if partial else ""
        print(f"resuming from {checkpoint} after epoch {start}{where}", file=sys.stderr)
    end = epochs if stop_after is None else min(epochs, start + stop_after)
    with _ctrl_c_between_steps() as stop:
        for epoch in range(start, end):
            model.train()
            if partial is not None:      # resume inside this epoch: same order, same totals
                order, done, totals = partial["order"], partial["step"], partial["totals"]
                partial = None
            else:                        # the same draw as iterate_minibatches(shuffle=True)
                order, done = rng.permutation(n), 0
                totals = {"seen": 0, "loss_sum": 0.0, "correct": 0, "seconds": 0.0,
                          "cpu_seconds": 0.0}
            t0 = last_save = time.time()
            cpu0, earlier = time.process_time(), dict(totals)
            rngs_at_done = _rng_states(model, rng)     # the random streams after step `done`
            batches = _progress(range(done, steps_per_epoch), steps_per_epoch - done,
                                f"epoch {epoch + 1}/{epochs}", progress)

            def state_now():
                cpu = earlier["cpu_seconds"] + time.process_time() - cpu0
                totals.update(seconds=round(earlier["seconds"] + time.time() - t0, 1),
                              cpu_seconds=round(cpu, 1))
                return {"order": order, "step": done, "totals": totals}
            try:
                for step in batches:
                    idx = order[step * batch_size:(step + 1) * batch_size]
                    t = epoch * steps_per_epoch + step
                    opt.lr = 0.5 * lr * (1 + np.cos(np.pi * t / total_steps))
                    with np.errstate(over="ignore", invalid="ignore"):   # divergence: below
                        loss, count, right = forward(idx)
                        value = float(loss.item())
                        if not math.isfinite(value):
                            raise TrainingDiverged(
                                f"training diverged in epoch {epoch + 1}, step {step + 1}: the "
                                f"loss is {value} (peak learning rate {lr:g}); lower the "
                                "learning rate. Nothing was written for this run")
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                    totals["seen"] += count
                    totals["loss_sum"] += value * count
                    totals["correct"] += right
                    done = step + 1
                    rngs_at_done = _rng_states(model, rng)
                    if progress and hasattr(batches, "set_postfix") and step % postfix_every == 0:
                        batches.set_postfix(loss=f"{totals['loss_sum'] / totals['seen']:.3f}",
                                            acc=f"{totals['correct'] / totals['seen']:.3f}")
                    if stop["requested"]:
                        raise KeyboardInterrupt
                    if (checkpoint and done < steps_per_epoch
                            and time.time() - last_save >= checkpoint_every):
                        _save_checkpoint(checkpoint, model, opt, epoch, rng, history, state_now())
                        last_save = time.time()
            except KeyboardInterrupt:
                if not checkpoint:
                    raise
                _set_rng_states(model, rng, rngs_at_done)   # as if the cut step never began
                _save_checkpoint(checkpoint, model, opt, epoch, rng, history, state_now())
                raise TrainingInterrupted(
                    f"interrupted in epoch {epoch + 1}/{epochs} after step {done}/"
                    f"{steps_per_epoch}; saved the checkpoint {checkpoint}", checkpoint) from None
            state_now()
            record = finish_epoch(epoch, totals)
            history.append(record)
            if print_records:
                print(json.dumps(record), file=sys.stderr)
            if checkpoint:
                _save_checkpoint(checkpoint, model, opt, epoch + 1, rng, history)
            if stop["requested"] and epoch + 1 < end:     # Ctrl-C during the evaluation
                if not checkpoint:
                    raise KeyboardInterrupt
                raise TrainingInterrupted(f"interrupted after epoch {epoch + 1}/{epochs}; saved "
                                          f"the checkpoint {checkpoint}", checkpoint)
    model.eval()
    return history


def fit(model, train, test=None, *, epochs, batch_size=128, lr=1e-3, optimizer="adam",
        weight_decay=0.0, augment=None, seed=0, checkpoint=None, resume=False, progress=True,
        stop_after=None, checkpoint_every=300.0):
    """Train ``model`` on ``train = (x, y)`` (x preprocessed float32 NCHW, y int labels).

    optimizer: "adam" or "sgd" (momentum 0.9, nesterov); the learning rate follows a
    cosine schedule from ``lr`` to 0 over all steps. augment: None or
    ``{"pad": 4, "flip": True}`` (random crop + horizontal flip, per batch).
    checkpoint / resume: write a checkpoint after every epoch, every ``checkpoint_every``
    seconds inside an epoch, and on Ctrl-C (then ``TrainingInterrupted`` is raised) /
    continue from it, inside an epoch too.
    stop_after: end this call after that many epochs (resume later: the schedule and the
    random streams continue exactly as in one uninterrupted run).
    A non-finite loss raises ``TrainingDiverged`` (no checkpoint is written for it).
    Returns the history: a list of per-epoch dicts (loss, train_acc, test_acc, seconds).
    """
    epochs = check_epochs(epochs, "fit")
    lr = check_lr(lr, "fit")
    x, y = train
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"fit: train needs as many labels as images and at least one image, "
                         f"got {len(x)} images and {len(y)} labels")
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    if optimizer == "adam":
        opt = optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        raise ValueError(f"fit: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    backend = params[0].backend

    def forward(idx):
        xb = x[idx]
        if augment:
            xb = random_crop_flip(xb, pad=augment.get("pad", 4), rng=rng,
                                  flip=augment.get("flip", True))
        logits = model(Tensor(as_backend(np.ascontiguousarray(xb), backend)))
        loss = ops.cross_entropy(logits, as_backend(y[idx], backend))
        return loss, len(idx), int((to_numpy(logits.data).argmax(1) == y[idx]).sum())

    def finish_epoch(epoch, t):
        record = {"epoch": epoch + 1, "loss": t["loss_sum"] / t["seen"],
                  "train_acc": t["correct"] / t["seen"], "seconds": t["seconds"]}
        if test is not None:
            record["test_acc"] = evaluate(model, *test)
        return record
    return run_epochs(model, opt, rng, len(x), forward, finish_epoch, epochs=epochs,
                      batch_size=batch_size, lr=lr, checkpoint=checkpoint, resume=resume,
                      progress=progress, stop_after=stop_after, checkpoint_every=checkpoint_every)


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


def default_out_dir():
    """Where ``minicnn train`` writes unless told otherwise: ``cache_dir()/trained`` — a folder
    ``pretrained=True`` does not read, so a training run never changes what the demo loads."""
    from . import io
    return os.path.join(io.cache_dir(), "trained")


def _is_shipped_folder(folder):
    from .models.registry import INSTALLED_WEIGHTS, REPO_WEIGHTS
    here = Path(folder).resolve()
    return any(here == Path(d).resolve() for d in (REPO_WEIGHTS, INSTALLED_WEIGHTS))


def prepare_output(name, out_dir=None, replace_shipped=False, data_root=None):
    """Check, before the first step, that the run can write its result: -> the path of
    ``<out_dir>/<name>.npz``. Refuses (ValueError / FileNotFoundError naming the argument):
    an ``out_dir`` that is a file or not writable; the shipped weights/ folder without
    ``replace_shipped``; a ``data_root`` that does not exist."""
    from .models.registry import REPO_WEIGHTS
    if data_root is not None and not os.path.exists(os.path.expanduser(os.fspath(data_root))):
        raise FileNotFoundError(f"train: --data {data_root}: no such file or folder (without "
                                "--data the standard locations are searched)")
    if replace_shipped:
        if out_dir is not None and not _is_shipped_folder(out_dir):
            raise ValueError(f"train: --replace-shipped writes into {REPO_WEIGHTS}; do not also "
                             f"give --out {out_dir}")
        out_dir = REPO_WEIGHTS
    elif out_dir is None:
        out_dir = default_out_dir()
    elif _is_shipped_folder(out_dir):
        raise ValueError(f"train: --out {out_dir} is the folder of the shipped weights; "
                         f"replacing {name}.npz there needs --replace-shipped (the file is kept "
                         "unless the new run scores at least as well)")
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"train: --out {out_dir} is a file, not a folder (the result is saved "
                         f"as <out>/{name}.npz + .json)")
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise ValueError(f"train: --out {out_dir} is not a writable folder ({err})") from None
    return os.path.join(out_dir, f"{name}.npz")


def save_result(path, state, meta):
    """Save ``state`` + ``meta`` at ``path`` unless that could lose a better file: a file
    already there is replaced only if its manifest records a score (``accuracy.value``) and
    the new one is at least as high. Otherwise it is kept, the new weights go to
    ``<name>.candidate.npz`` beside it and ``NotReplaced`` says why. Non-finite weights are
    never written (``TrainingDiverged``). Returns the path written."""
    from . import io
    bad = [k for k, v in state.items() if not np.isfinite(v).all()]
    if bad:
        raise TrainingDiverged(f"training diverged: {len(bad)} weight arrays hold NaN or inf "
                               f"(first {bad[0]!r}); nothing was written (lower the learning rate)")
    if os.path.exists(path):
        new = (meta.get("accuracy") or {}).get("value")
        try:
            old = (io.load_npz(path)[1].get("accuracy") or {}).get("value")
        except Exception:                # noqa: BLE001 — not a weights file we can read
            old = None
        if old is None or new is None or not new >= old:
            why = ("it records no score to compare with (remove it to replace it)" if old is None
                   else f"it scores {old:.4f}, this run {new:.4f}")
            candidate = path[:-len(".npz")] + ".candidate.npz"
            io.save_npz(candidate, state, meta)
            raise NotReplaced(f"kept {path}: {why}; this run's weights are in {candidate}",
                              candidate)
    io.save_npz(path, state, meta)
    return path


def train_recipe(name, out_dir=None, data_root=None, epochs=None, seed=0, resume=False,
                 checkpoint_dir=None, progress=True, command=None, lr=None, init=None,
                 replace_shipped=False):
    """Train a shipped model by its recipe and save ``<out_dir>/<name>.npz`` + manifest.

    out_dir: default ``default_out_dir()``; the shipped weights/ folder only with
    ``replace_shipped`` (see ``prepare_output`` and ``save_result``: checked before the
    first step; a worse or diverged run never replaces a file).
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
        recipe["epochs"] = check_epochs(epochs)
    if lr is not None:
        recipe["lr"] = check_lr(lr)
    path = prepare_output(name, out_dir, replace_shipped, data_root)
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
    state = {k: to_numpy(v) for k, v in model.state_dict().items()}
    return save_result(path, state, meta), history
