"""Scoring per-pixel classifiers (semantic segmentation), and training them with the loop.

    history = fit_segmentation(model, train, test, epochs=4, batch_size=16)
    scores = evaluate_segmentation(model, test)      # {"pixel_accuracy", "mean_iou", "iou"}

``fit_segmentation`` is ``loop.fit`` with a label per pixel: logits (N, K, H, W),
labels (N, H, W), loss = mean over all pixels of the per-pixel cross-entropy, the
pixel accuracy as training metric and the scores below on the test split.
Batches come from a dataset generated on the fly (``data.segdata.SegmentationCanvases``:
``len`` and ``batch(indices)`` -> uint8 images, int labels) or from a pair of
arrays; images are preprocessed with ``model.preprocess``. The recipes that made the
shipped segmentation weights are in ``recipes.py``.

Scores, from the confusion matrix C[t, p] = #pixels of true class t predicted p:

    pixel accuracy = Σ_k C[k, k] / Σ C
    IoU_k          = C[k, k] / (Σ_p C[k, p] + Σ_t C[t, k] − C[k, k])   (intersection / union)
    mean IoU       = mean of IoU_k over the classes present in truth or prediction
"""
import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..backend import as_backend, to_numpy
from .loop import batch_count, fit, get_batch

__all__ = ["fit_segmentation", "evaluate_segmentation", "predict_masks", "confusion_matrix",
           "segmentation_scores", "test_scores"]


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
    n = batch_count(data)
    for start in range(0, n, batch_size):
        images, labels = get_batch(data, np.arange(start, min(n, start + batch_size)))
        conf += confusion_matrix(predict_masks(model, images, batch_size), labels, k)
    return segmentation_scores(conf)


def test_scores(model, test):
    """The segmentation test entries of a history record: pixel accuracy and mean IoU."""
    s = evaluate_segmentation(model, test)
    return {"test_pixel_acc": s["pixel_accuracy"], "test_mean_iou": s["mean_iou"]}


def fit_segmentation(model, train, test=None, *, epochs, batch_size=16, lr=2e-3, weight_decay=0.0,
                     seed=0, checkpoint=None, resume=False, progress=True, stop_after=None,
                     checkpoint_every=300.0):
    """Train ``model`` (logits (N, K, H, W)) with per-pixel cross-entropy; Adam, cosine schedule.

    train / test: a dataset with ``len`` and ``batch(indices)`` or an (images, labels) pair of
    uint8 images (N, H, W[, C]) and int labels (N, H, W). One epoch = one pass over ``train``.
    checkpoint / resume / stop_after / checkpoint_every: as in ``loop.fit`` (continue
    exactly after a stop or Ctrl-C, inside an epoch too): this is that loop.
    Returns the history: per-epoch dicts (loss, train_pixel_acc, seconds (wall), cpu_seconds
    (this process), test_pixel_acc and test_mean_iou if ``test``).
    """
    return fit(model, train, test, epochs=epochs, batch_size=batch_size, lr=lr,
               weight_decay=weight_decay, seed=seed, checkpoint=checkpoint, resume=resume,
               progress=progress, stop_after=stop_after, checkpoint_every=checkpoint_every,
               loss=ops.cross_entropy, metric="pixel_acc", evaluate=test_scores,
               preprocess=model.preprocess.preprocess, who="fit_segmentation",
               print_records=progress)
