"""The recipes that made the shipped weights: which model, which data, which settings.

    train_recipe("fashion_net")              # what `minicnn train fashion_net` runs: writes
                                             # cache_dir()/trained/fashion_net.npz + .json
    train_segmentation_recipe("unet")        # what `minicnn train unet` runs

The only part of training that names shipped models; the loop (``loop.fit``) and the
techniques that train (``techniques.adv_training``) work on any Module.

Where a recipe writes: ``--out`` (default ``cache_dir()/trained``, which
``pretrained=True`` does not read). The shipped files in weights/ are replaced
only with ``replace_shipped=True``, and no file is ever replaced by weights that
are not finite or score lower than it (those are kept beside it as
``<name>.candidate.npz``).
"""
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import data, io, models
from ..backend import to_numpy
from ..data.segdata import SEG_CLASSES, SegmentationCanvases
from ..models import segmentation
from ..models import pretrained
from .loop import MAX_WEIGHT, TrainingDiverged, check_epochs, check_lr, evaluate, fit
from .segmentation import evaluate_segmentation, fit_segmentation

__all__ = ["RECIPES", "train_recipe", "SEG_RECIPES", "train_segmentation_recipe", "NotReplaced",
           "default_out_dir", "prepare_output", "save_result"]


class NotReplaced(RuntimeError):
    """A finished run scored lower than the file it would replace: that file is kept and the
    new weights are saved beside it (``candidate``)."""

    def __init__(self, message, candidate):
        super().__init__(message)
        self.candidate = candidate


RECIPES = {
    "fashion_net": dict(dataset="fashion_mnist", epochs=15, batch_size=128, lr=2e-3,
                        optimizer="adam", augment={"pad": 2, "flip": True}),
    "cifar_net": dict(dataset="cifar10", epochs=20, batch_size=128, lr=2e-3,
                      optimizer="adam", augment={"pad": 4, "flip": True}),
}


CHECK_SUBSET = 2000   # the manifest also records accuracy on this many test images (a quick check)


def _dataset(name, root):
    if name == "fashion_mnist":
        (xtr, ytr), (xte, yte) = (data.load_fashion_mnist(s, root=root) for s in ("train", "test"))
        return xtr, ytr, xte, yte, data.FASHION_MNIST_CLASSES, "Fashion-MNIST test set"
    (xtr, ytr), (xte, yte) = (data.load_cifar10(s, root=root) for s in ("train", "test"))
    return xtr, ytr, xte, yte, data.CIFAR10_CLASSES, "CIFAR-10 test set"


def _dict(value):
    """A manifest entry that should be a dict, or {} (a hand-edited one may hold anything)."""
    return value if isinstance(value, dict) else {}


def _chain_seconds(started_from):
    """Training seconds of every earlier cycle recorded in a ``started_from`` chain."""
    total, depth = 0.0, 0
    while isinstance(started_from, dict) and depth < 1000:    # a hand-edited manifest may
        history = started_from.get("history")                 # hold anything: count numbers
        for h in history if isinstance(history, list) else ():
            seconds = h.get("seconds") if isinstance(h, dict) else None
            total += seconds if isinstance(seconds, (int, float)) and math.isfinite(seconds) else 0
        started_from, depth = started_from.get("started_from"), depth + 1
    return total


def default_out_dir():
    """Where ``minicnn train`` writes unless told otherwise: ``cache_dir()/trained`` — a folder
    ``pretrained=True`` does not read, so a training run never changes what the demo loads."""
    return os.path.join(io.cache_dir(), "trained")


def _is_shipped_folder(folder):
    here = Path(folder).resolve()
    return any(here == Path(d).resolve() for d in (pretrained.REPO_WEIGHTS, pretrained.INSTALLED_WEIGHTS))


def prepare_output(name, out_dir=None, replace_shipped=False, data_root=None):
    """Check, before the first step, that the run can write its result: -> the path of
    ``<out_dir>/<name>.npz``. Refuses (ValueError / FileNotFoundError naming the argument):
    an ``out_dir`` that is a file or not writable; the shipped weights/ folder without
    ``replace_shipped``; a ``data_root`` that does not exist."""
    if data_root is not None and not os.path.exists(os.path.expanduser(os.fspath(data_root))):
        raise FileNotFoundError(f"train: --data {data_root}: no such file or folder (without "
                                "--data the standard locations are searched)")
    if replace_shipped:
        if out_dir is not None and not _is_shipped_folder(out_dir):
            raise ValueError(f"train: --replace-shipped writes into {pretrained.REPO_WEIGHTS}; do not also "
                             f"give --out {out_dir}")
        out_dir = pretrained.REPO_WEIGHTS
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


def save_result(path, state, meta, rescore=None):
    """Save ``state`` + ``meta`` at ``path`` unless that could lose a better file: a file
    already there is replaced only if it scores no higher than the new weights *on the same
    test set*: ``rescore(path)`` measures it on this run's test set; without ``rescore``
    its manifest's score counts only if it was measured on the same set (``accuracy.on``).
    Otherwise it is kept, the new weights go to ``<name>.candidate.npz`` beside it and
    ``NotReplaced`` says why and on which images. Non-finite or exploded weights are never
    written (``TrainingDiverged``). Returns the path written."""
    bad = [k for k, v in state.items() if np.asarray(v).dtype.kind == "f" and np.size(v) and
           not (np.isfinite(v).all() and np.abs(v).max() <= MAX_WEIGHT)]
    if bad:
        raise TrainingDiverged(f"training diverged: {len(bad)} weight arrays hold NaN, inf or "
                               f"values over {MAX_WEIGHT:g} (first {bad[0]!r}); nothing was "
                               "written (lower the learning rate)")
    if os.path.exists(path):
        accuracy = meta.get("accuracy") or {}
        new, on = accuracy.get("value"), accuracy.get("on")
        old, why = _old_score(path, on, rescore)
        if old is None or new is None or not new >= old:
            why = why or f"it scores {old:.4f} on {on}, this run {new:.4f} on the same images"
            candidate = path[:-len(".npz")] + ".candidate.npz"
            io.save_npz(candidate, state, meta)
            raise NotReplaced(f"kept {path}: {why}; this run's weights are in {candidate}",
                              candidate)
        print(f"replacing {path}: it scores {old:.4f} on {on}, this run {new:.4f} on the "
              f"same images", file=sys.stderr)
    io.save_npz(path, state, meta)
    return path


def _old_score(path, on, rescore):
    """(score of the file at ``path`` on the test set ``on``, None) or (None, why not)."""
    if rescore is not None:
        try:
            return float(rescore(path)), None
        except Exception as err:         # noqa: BLE001 — not weights this model can load
            return None, f"it cannot be scored on {on} to compare ({str(err)[:200]})"
    try:
        recorded = _dict(io.load_npz(path)[1].get("accuracy"))
    except Exception:                    # noqa: BLE001 — not a weights file we can read
        recorded = {}
    if recorded.get("value") is None:
        return None, "it records no score to compare with (remove it to replace it)"
    if recorded.get("on") != on:
        return None, (f"its score {recorded['value']} was measured on {recorded.get('on')}, "
                      f"this run's on {on}: not comparable (remove it to replace it)")
    return recorded["value"], None


def train_recipe(name, out_dir=None, *, data_root=None, epochs=None, seed=0, resume=False,
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
        prov = _dict(init_meta.get("provenance"))
        started_from = {"file": os.path.basename(os.fspath(init)), "sha256": init_meta["sha256"],
                        "accuracy": _dict(init_meta.get("accuracy")).get("value"),
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
                       "made_by": "minicnn.training.loop.fit (NumPy backend)"},
    }
    if started_from:
        meta["provenance"]["started_from"] = started_from
        meta["provenance"]["train_seconds_all_cycles"] = round(
            meta["provenance"]["train_seconds_total"] + _chain_seconds(started_from))
    state = {k: to_numpy(v) for k, v in model.state_dict().items()}

    def rescore(old_path):             # the file already there, on this run's test set
        old = pretrained.load_pretrained(getattr(models, name)(pretrained=False), old_path)
        return evaluate(old, xte, yte)
    return save_result(path, state, meta, rescore), history


# ------------------------------------------------------- segmentation recipes

SEG_RECIPES = {
    name: dict(size=64, train_length=16000, test_length=500, epochs=4, batch_size=8, lr=2e-3,
               pretrained_encoder=True)
    for name in ("segnet", "segnet_transposed", "unet")
}


def _trunk_note(trunk):
    """Where the transferred convs came from, without the machine's folders: the weights
    file's name and its sha256 (from the manifest), or the trunk's own ``note``."""
    path = getattr(trunk, "weights_path", None)
    if path is None:
        return getattr(trunk, "note", None) or type(trunk).__name__
    sha = (getattr(trunk, "manifest", None) or {}).get("sha256")
    return os.path.basename(path) + (f" (sha256 {sha[:16]}…)" if sha else "")


def train_segmentation_recipe(name, out_dir=None, *, data_root=None, epochs=None, seed=0,
                              resume=False, checkpoint_dir=None, progress=True, command=None,
                              pretrained_encoder=None, out_name=None, replace_shipped=False):
    """Train a segmentation model by its recipe on the synthetic canvases; save
    ``<out_dir>/<out_name or name>.npz`` + manifest (scores on the test split) -> (path, history).
    pretrained_encoder: override the recipe: True (fashion_net's shipped convs), False (random),
    or a trained classifier with ``features`` (its ``weights_path`` or ``note`` is recorded).
    out_dir / replace_shipped: as in ``training.train_recipe`` (default: the cache's trained/;
    a worse or diverged run never replaces a file)."""
    if name not in SEG_RECIPES:
        raise ValueError(f"train: no segmentation recipe for {name!r}; known: {sorted(SEG_RECIPES)}")
    recipe = dict(SEG_RECIPES[name])
    if epochs is not None:
        recipe["epochs"] = check_epochs(epochs)
    path = prepare_output(out_name or name, out_dir, replace_shipped, data_root)
    trunk = recipe["pretrained_encoder"] if pretrained_encoder is None else pretrained_encoder
    recipe["pretrained_encoder"] = trunk is not None and trunk is not False
    if trunk is True:
        trunk = models.fashion_net(pretrained=True)
    model = getattr(segmentation, name)(
        pretrained_encoder=trunk if recipe["pretrained_encoder"] else None, seed=seed)
    train = SegmentationCanvases("train", recipe["size"], recipe["train_length"], seed=seed,
                                 data_root=data_root)
    test = SegmentationCanvases("test", recipe["size"], recipe["test_length"], seed=seed,
                                data_root=data_root)
    ckpt_dir = checkpoint_dir or os.path.join(io.cache_dir(), "train")
    tag = "pre" if recipe["pretrained_encoder"] else "scratch"
    checkpoint = os.path.join(ckpt_dir, f"{name}-{tag}-seed{seed}.ckpt.npz")
    t0, cpu0 = time.time(), time.process_time()
    history = fit_segmentation(model, train, test, epochs=recipe["epochs"],
                               batch_size=recipe["batch_size"], lr=recipe["lr"], seed=seed,
                               checkpoint=checkpoint, resume=resume, progress=progress)
    scores = evaluate_segmentation(model, test)
    meta = {
        "architecture": name,
        "preprocessing": model.preprocess.to_dict(),
        "labels": list(SEG_CLASSES),
        "accuracy": {"value": scores["mean_iou"], "metric": "mean IoU",
                     "pixel_accuracy": scores["pixel_accuracy"], "iou": scores["iou"],
                     "on": f"{test!r}"},
        "provenance": {"command": command or f"minicnn train {name} --seed {seed}",
                       "recipe": {**recipe, "seed": seed},
                       "transferred": getattr(model, "transferred", []),
                       "trunk": _trunk_note(trunk) if recipe["pretrained_encoder"] else None,
                       "train_seconds_this_run": round(time.time() - t0),
                       "cpu_seconds_this_run": round(time.process_time() - cpu0),
                       "train_seconds_total": round(sum(h["seconds"] for h in history)),
                       "history": history,
                       "made_by": "minicnn.training.segmentation.fit_segmentation (NumPy backend)"},
    }
    state = {k: to_numpy(v) for k, v in model.state_dict().items()}

    def rescore(old_path):             # the file already there, on this run's test canvases
        old = getattr(segmentation, name)(pretrained_encoder=None, seed=seed)
        return evaluate_segmentation(pretrained.load_pretrained(old, old_path), test)["mean_iou"]
    return save_result(path, state, meta, rescore), history
