"""The training loop: one for every model, the loss and the metric are parameters.

    fit(model, (x, y), test=(xt, yt), epochs=12, ...)        # any classifier
    fit(model, canvases, loss=..., evaluate=..., ...)         # per-pixel: training/segmentation.py

The loop is the textbook one: shuffle, mini-batch, forward, loss, backward,
optimizer step; evaluation in ``no_grad`` + ``eval()`` mode. It is
deterministic given ``seed`` and resumable: after every epoch, every few minutes
inside an epoch and on Ctrl-C, a checkpoint (model, optimizer and RNG state, and
the place in the epoch) is written atomically, and ``resume=True`` continues from
it exactly. A loss that stops being finite ends the run (``TrainingDiverged``)
before anything is written.

It knows models only as ``nn.Module``s; how the shipped weights were made (which
model, data and settings) is in ``recipes.py``.
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

import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..backend import as_backend, to_numpy
from ..data.images import random_crop_flip
from ..nn import optim

__all__ = ["fit", "run_epochs", "evaluate", "predict", "TrainingDiverged",
           "TrainingInterrupted", "check_epochs", "check_lr", "get_batch", "batch_count", "test_accuracy"]


MAX_LOSS_GROWTH = 1e6     # a loss this many times the first one (or 1) has exploded
MAX_WEIGHT = 1e8          # a weight this large has exploded (float32 activations overflow)


class TrainingDiverged(ValueError):
    """The loss (or a weight) stopped being finite: the learning rate is too large."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``fit``: the checkpoint holding the run so far was saved at ``checkpoint``."""

    def __init__(self, message, checkpoint):
        super().__init__(message)
        self.checkpoint = checkpoint


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
    """Every parameter finite and below MAX_WEIGHT in size."""
    for p in model.parameters():
        a = to_numpy(p.data)
        if a.size and not (np.isfinite(a).all() and np.abs(a).max() <= MAX_WEIGHT):
            return False
    return True


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
    """Top-1 accuracy in [0, 1]. Refused (ValueError) when x and y differ in length, or when
    some logits are NaN or infinite: the argmax of a NaN row is 0, which would score it as a
    guess of class 0 instead of saying the net is broken."""
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"evaluate: x holds {len(x)} images but y {len(y)} labels")
    logits = predict(model, x, batch_size)
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        raise ValueError(f"evaluate: the model's logits are NaN or infinite for {int(bad.sum())} "
                         f"of {len(bad)} images (first: image {int(np.argmax(bad))}); "
                         "its weights or the input are not finite")
    return float((logits.argmax(axis=1) == y).mean())


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


def _check_writable(folder):
    """The checkpoint folder can be written -- found before the first step, not after an
    epoch of work."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"cannot write checkpoints into {folder} ({err.strerror or err}); "
                         "nothing was trained. Set MINICNN_HOME to a writable folder") from None


def _save_checkpoint(path, model, optimizer, epoch, rng, history, partial=None):
    """Model, optimizer and RNG state after ``epoch`` (plus, inside an epoch, ``partial``:
    the epoch's batch order and the steps done), written atomically to one .npz."""
    if not _all_finite(model):
        raise TrainingDiverged(f"training diverged: a weight is NaN, inf or over {MAX_WEIGHT:g} "
                               f"after epoch {epoch}; "
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
    if checkpoint:
        _check_writable(os.path.dirname(os.path.abspath(checkpoint)))
    start, history, partial = 0, [], None
    if resume and checkpoint and os.path.exists(checkpoint):
        try:
            start, history, partial = _load_checkpoint(checkpoint, model, opt, rng)
        except Exception as err:       # noqa: BLE001 — any damage: one line naming the file
            raise ValueError(f"resume: the checkpoint {checkpoint} cannot be used "
                             f"({type(err).__name__}: {str(err)[:300]}); delete it to start "
                             "over") from None
        if start > epochs or (start == epochs and partial is not None):
            raise ValueError(f"resume: the checkpoint {checkpoint} is past epoch {start}, but "
                             f"this run has {epochs} epochs; give --epochs {start + 1} or more, "
                             "or delete the checkpoint to start over")
        where = f" and {partial['step']} steps of epoch {start + 1}" if partial else ""
        print(f"resuming from {checkpoint} after epoch {start}{where}", file=sys.stderr)
    end = epochs if stop_after is None else min(epochs, start + stop_after)
    first_loss = history[0]["loss"] if history and "loss" in history[0] else None
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
                        first_loss = value if first_loss is None else first_loss
                        if not math.isfinite(value) or value > MAX_LOSS_GROWTH * max(1.0, first_loss):
                            raise TrainingDiverged(
                                f"training diverged in epoch {epoch + 1}, step {step + 1}: the "
                                f"loss is {value:.4g}, from {first_loss:.4g} at the first step "
                                f"(peak learning rate {lr:g}); lower the learning rate. "
                                "Nothing was written for this run")
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


def get_batch(data, idx):
    """(inputs, labels) of the examples ``idx`` from an (inputs, labels) pair of arrays or
    a dataset with ``batch(indices)`` (e.g. ``data.segdata.SegmentationCanvases``)."""
    if hasattr(data, "batch"):
        return data.batch(idx)
    return data[0][idx], np.asarray(data[1])[idx]


def batch_count(data):
    """How many examples ``data`` holds (a pair of arrays or a dataset with ``len``)."""
    return len(data) if hasattr(data, "batch") else len(data[0])


def test_accuracy(model, test):
    """The classifiers' test score: {"test_acc": top-1 accuracy on test = (x, y)}. Logits
    that are not finite end the run (``TrainingDiverged``): argmax would still give a score."""
    logits = predict(model, test[0])
    bad = int((~np.isfinite(logits)).any(axis=1).sum())
    if bad:
        raise TrainingDiverged(f"training diverged: the model's outputs are NaN or inf on "
                               f"{bad} of {len(logits)} test images; nothing was written "
                               "(lower the learning rate)")
    return {"test_acc": float((logits.argmax(axis=1) == np.asarray(test[1])).mean())}


def fit(model, train, test=None, *, epochs, batch_size=128, lr=1e-3, optimizer="adam",
        weight_decay=0.0, augment=None, seed=0, checkpoint=None, resume=False, progress=True,
        stop_after=None, checkpoint_every=300.0, loss=ops.cross_entropy, metric="acc",
        evaluate=test_accuracy, preprocess=None, who="fit", print_records=True):
    """Train ``model`` on ``train``: an (x, y) pair (x float32 NCHW, y int labels) or a
    dataset with ``len`` and ``batch(indices)``.

    loss(logits Tensor, labels) -> scalar Tensor: cross-entropy by default; with logits
    (N, K, H, W) and labels (N, H, W) it is the per-pixel mean. The training metric counts
    argmax(logits, axis 1) == labels over every label (an image or a pixel each) and is
    recorded as ``train_<metric>``. evaluate(model, test) -> the record's test entries
    (default ``{"test_acc": ...}``). preprocess: applied to each batch's inputs (e.g.
    ``model.preprocess.preprocess`` for uint8 images), after ``augment``.
    optimizer: "adam" or "sgd" (momentum 0.9, nesterov); the learning rate follows a
    cosine schedule from ``lr`` to 0 over all steps. augment: None or
    ``{"pad": 4, "flip": True}`` (random crop + horizontal flip, per batch).
    checkpoint / resume: write a checkpoint after every epoch, every ``checkpoint_every``
    seconds inside an epoch, and on Ctrl-C (then ``TrainingInterrupted`` is raised) /
    continue from it, inside an epoch too.
    stop_after: end this call after that many epochs (resume later: the schedule and the
    random streams continue exactly as in one uninterrupted run).
    A non-finite loss raises ``TrainingDiverged`` (no checkpoint is written for it).
    Returns the history: a list of per-epoch dicts (loss, train_<metric>, seconds (wall),
    cpu_seconds (this process), and the test entries).
    """
    epochs = check_epochs(epochs, who)
    lr = check_lr(lr, who)
    n = batch_count(train)
    if not hasattr(train, "batch") and (n == 0 or n != len(train[1])):
        raise ValueError(f"{who}: train needs as many labels as images and at least one image, "
                         f"got {n} images and {len(train[1])} labels")
    if n == 0:
        raise ValueError(f"{who}: the training set is empty")
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    if optimizer == "adam":
        opt = optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        raise ValueError(f"{who}: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    backend = params[0].backend

    def forward(idx):
        xb, yb = get_batch(train, idx)
        if augment:
            xb = random_crop_flip(xb, pad=augment.get("pad", 4), rng=rng,
                                  flip=augment.get("flip", True))
        if preprocess is not None:
            xb = preprocess(xb)
        logits = model(Tensor(as_backend(np.ascontiguousarray(xb), backend)))
        value = loss(logits, as_backend(yb, backend))
        return value, yb.size, int((to_numpy(logits.data).argmax(1) == yb).sum())

    def finish_epoch(epoch, t):
        record = {"epoch": epoch + 1, "loss": t["loss_sum"] / t["seen"],
                  f"train_{metric}": t["correct"] / t["seen"], "seconds": t["seconds"],
                  "cpu_seconds": t["cpu_seconds"]}
        if test is not None:
            record.update(evaluate(model, test))
        return record
    return run_epochs(model, opt, rng, n, forward, finish_epoch, epochs=epochs,
                      batch_size=batch_size, lr=lr, checkpoint=checkpoint, resume=resume,
                      progress=progress, stop_after=stop_after, checkpoint_every=checkpoint_every,
                      print_records=print_records)
