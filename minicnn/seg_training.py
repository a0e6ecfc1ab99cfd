"""Training and scoring per-pixel classifiers (semantic segmentation).

    history = fit_segmentation(model, train, test, epochs=4, batch_size=16)
    scores = evaluate_segmentation(model, test)      # {"pixel_accuracy", "mean_iou", "iou"}
    train_segmentation_recipe("unet")                # what `minicnn train unet` runs

The loop is ``training.run_epochs`` (as in ``training.fit``), with a label per pixel:
logits (N, K, H, W), labels (N, H, W), loss = mean over all pixels of the per-pixel
cross-entropy.
Batches come from a dataset generated on the fly (``segdata.SegmentationCanvases``:
``len`` and ``batch(indices)`` -> uint8 images, int labels) or from a pair of
arrays; images are preprocessed with ``model.preprocess``. Checkpoints and
resuming reuse ``training``'s (model, optimizer, RNG state and the place in the epoch).

Scores, from the confusion matrix C[t, p] = #pixels of true class t predicted p:

    pixel accuracy = Σ_k C[k, k] / Σ C
    IoU_k          = C[k, k] / (Σ_p C[k, p] + Σ_t C[t, k] − C[k, k])   (intersection / union)
    mean IoU       = mean of IoU_k over the classes present in truth or prediction
"""
import os
import time

import numpy as np

from . import ops
from .nn import optim
from .autograd import Tensor, no_grad
from .backend import as_backend, to_numpy
from .training import check_epochs, check_lr, prepare_output, run_epochs, save_result

__all__ = ["fit_segmentation", "evaluate_segmentation", "predict_masks", "confusion_matrix",
           "segmentation_scores", "SEG_RECIPES", "train_segmentation_recipe"]


def _get_batch(data, idx):
    """(uint8 images (B, H, W[, C]), labels (B, H, W)) from a dataset or an (images, labels) pair."""
    if hasattr(data, "batch"):
        return data.batch(idx)
    return data[0][idx], np.asarray(data[1])[idx]


def _length(data):
    return len(data) if hasattr(data, "batch") else len(data[0])


def _backend(model):
    return next(iter(model.parameters())).backend


def predict_masks(model, images, batch_size=32):
    """Per-pixel class (argmax of the scores), int64 (N, H, W), from uint8 images (N, H, W[, C])."""
    model.eval()
    out = []
    with no_grad():
        for i in range(0, len(images), batch_size):
            x = model.preprocess.preprocess(images[i:i + batch_size])
            logits = model(Tensor(as_backend(x, _backend(model))))
            out.append(to_numpy(logits.data).argmax(axis=1))
    return np.concatenate(out) if out else np.zeros((0,) + np.shape(images)[1:3], np.int64)


def confusion_matrix(pred, truth, num_classes):
    """C[t, p] = number of pixels of true class t predicted as p, (K, K) int64."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"confusion_matrix: predictions {pred.shape} and labels {truth.shape} "
                         "must have the same shape")
    flat = truth.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def segmentation_scores(conf):
    """{"pixel_accuracy", "mean_iou", "iou": [IoU_k or None if class k never appears]}."""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"pixel_accuracy": float(tp.sum() / max(conf.sum(), 1)),
            "mean_iou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
            "iou": [None if np.isnan(v) else round(float(v), 4) for v in iou]}


def evaluate_segmentation(model, data, batch_size=32, num_classes=None):
    """Pixel accuracy, mean IoU and per-class IoU of ``model`` on a dataset or (images, labels)."""
    k = num_classes or getattr(model, "num_classes", None) or data.num_classes
    conf = np.zeros((k, k), np.int64)
    n = _length(data)
    for start in range(0, n, batch_size):
        images, labels = _get_batch(data, np.arange(start, min(n, start + batch_size)))
        conf += confusion_matrix(predict_masks(model, images, batch_size), labels, k)
    return segmentation_scores(conf)


def fit_segmentation(model, train, test=None, *, epochs, batch_size=16, lr=2e-3, weight_decay=0.0,
                     seed=0, checkpoint=None, resume=False, progress=True, stop_after=None,
                     checkpoint_every=300.0):
    """Train ``model`` (logits (N, K, H, W)) with per-pixel cross-entropy; Adam, cosine schedule.

    train / test: a dataset with ``len`` and ``batch(indices)`` or an (images, labels) pair of
    uint8 images (N, H, W[, C]) and int labels (N, H, W). One epoch = one pass over ``train``.
    checkpoint / resume / stop_after / checkpoint_every: as in ``training.fit`` (continue
    exactly after a stop or Ctrl-C, inside an epoch too); the loop is ``training.run_epochs``.
    Returns the history: per-epoch dicts (loss, train_pixel_acc, seconds (wall), cpu_seconds
    (this process), test_pixel_acc and test_mean_iou if ``test``).
    """
    epochs, lr = check_epochs(epochs, "fit_segmentation"), check_lr(lr, "fit_segmentation")
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    opt = optim.Adam(params, lr=lr, weight_decay=weight_decay)
    n = _length(train)
    if n == 0:
        raise ValueError("fit_segmentation: the training set is empty")
    backend = params[0].backend

    def forward(idx):
        images, labels = _get_batch(train, idx)
        logits = model(Tensor(as_backend(model.preprocess.preprocess(images), backend)))
        loss = ops.cross_entropy(logits, labels)
        return loss, labels.size, int((to_numpy(logits.data).argmax(1) == labels).sum())

    def finish_epoch(epoch, t):
        record = {"epoch": epoch + 1, "loss": t["loss_sum"] / t["seen"],
                  "train_pixel_acc": t["correct"] / t["seen"], "seconds": t["seconds"],
                  "cpu_seconds": t["cpu_seconds"]}
        if test is not None:
            s = evaluate_segmentation(model, test)
            record.update(test_pixel_acc=s["pixel_accuracy"], test_mean_iou=s["mean_iou"])
        return record
    return run_epochs(model, opt, rng, n, forward, finish_epoch, epochs=epochs,
                      batch_size=batch_size, lr=lr, checkpoint=checkpoint, resume=resume,
                      progress=progress, stop_after=stop_after, checkpoint_every=checkpoint_every,
                      print_records=progress, postfix_every=10)


# ------------------------------------------------------------------- recipes

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


def train_segmentation_recipe(name, out_dir=None, data_root=None, epochs=None, seed=0,
                              resume=False, checkpoint_dir=None, progress=True, command=None,
                              pretrained_encoder=None, out_name=None, replace_shipped=False):
    """Train a segmentation model by its recipe on the synthetic canvases; save
    ``<out_dir>/<out_name or name>.npz`` + manifest (scores on the test split) -> (path, history).
    pretrained_encoder: override the recipe: True (fashion_net's shipped convs), False (random),
    or a trained classifier with ``features`` (its ``weights_path`` or ``note`` is recorded).
    out_dir / replace_shipped: as in ``training.train_recipe`` (default: the cache's trained/;
    a worse or diverged run never replaces a file)."""
    from . import io
    from .models import segmentation
    from .data.segdata import SEG_CLASSES, SegmentationCanvases
    if name not in SEG_RECIPES:
        raise ValueError(f"train: no segmentation recipe for {name!r}; known: {sorted(SEG_RECIPES)}")
    recipe = dict(SEG_RECIPES[name])
    if epochs is not None:
        recipe["epochs"] = check_epochs(epochs)
    path = prepare_output(out_name or name, out_dir, replace_shipped, data_root)
    trunk = recipe["pretrained_encoder"] if pretrained_encoder is None else pretrained_encoder
    recipe["pretrained_encoder"] = trunk is not None and trunk is not False
    if trunk is True:
        from .models import fashion_net
        trunk = fashion_net(pretrained=True)
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
                       "made_by": "minicnn.seg_training.fit_segmentation (NumPy backend)"},
    }
    state = {k: to_numpy(v) for k, v in model.state_dict().items()}
    return save_result(path, state, meta), history
