"""Shape vs texture bias (Geirhos et al. 2019, "ImageNet-trained CNNs are biased towards texture").

    cc = cue_conflict_images(style_model, contents, styles, shape_labels, texture_labels,
                             content_layer="features.7", style_layers=[...])
    res = shape_bias(model, cc["images"], cc["shape_labels"], cc["texture_labels"])
    res["shape_fraction"]        # shape decisions / (shape + texture decisions)

A cue-conflict image has the *shape* (content, layout) of one class and the *texture*
(Gram statistics) of another, made here by this project's own style transfer
(``style.style_transfer``: the content image painted with the style image's textures).
For each image the model's decision is read as

    decision="top1"   the top-1 class (or category): shape if = shape label, texture if =
                      texture label, neither otherwise — Geirhos' measure
    decision="pair"   whichever of the two cue classes scores higher (never "neither":
                      useful with 1000 classes, where top-1 rarely hits either)

and shape bias = #shape / (#shape + #texture). ``class_map`` (an int array K → category,
−1 for classes outside every category) aggregates classes into categories by their mean
probability, as Geirhos' 16 ImageNet categories do.
"""
import numpy as np

from ..training.loop import predict
from .common import as_input

__all__ = ["cue_conflict_images", "shape_bias", "decision_fractions", "category_scores"]


def category_scores(probabilities, class_map):
    """Mean probability of each category's classes: (N, K) -> (N, n_categories)."""
    class_map = np.asarray(class_map)
    p = np.asarray(probabilities)
    if class_map.shape != (p.shape[1],):
        raise ValueError(f"class_map needs one category per class ({p.shape[1]}), got shape "
                         f"{class_map.shape}")
    cats = int(class_map.max()) + 1
    if cats < 1:
        raise ValueError("class_map maps no class to a category (all −1)")
    return np.stack([p[:, class_map == c].mean(axis=1) if (class_map == c).any()
                     else np.full(len(p), -np.inf) for c in range(cats)], axis=1)


def _check_labels(shape_labels, texture_labels, n):
    s, t = (np.asarray(v).astype(np.int64).reshape(-1) for v in (shape_labels, texture_labels))
    if len(s) != n or len(t) != n:
        raise ValueError(f"need one shape and one texture label per image: {n} images, "
                         f"{len(s)} shape labels, {len(t)} texture labels")
    same = np.flatnonzero(s == t)
    if same.size:
        raise ValueError(f"shape label equals texture label for image(s) {same.tolist()}: a "
                         "cue-conflict image needs two different classes")
    return s, t


def decision_fractions(scores, shape_labels, texture_labels, decision="top1"):
    """Count shape / texture / neither decisions from scores (N, K) (logits, probabilities
    or category scores). Returns a dict: shape_fraction, shape, texture, neither, n,
    decisions (per image: "shape", "texture" or "neither")."""
    scores = np.asarray(scores, np.float64)
    s, t = _check_labels(shape_labels, texture_labels, len(scores))
    k = scores.shape[1]
    if max(s.max(initial=0), t.max(initial=0)) >= k or min(s.min(initial=0), t.min(initial=0)) < 0:
        raise ValueError(f"labels must be in 0..{k - 1} (the scores have {k} columns)")
    rows = np.arange(len(scores))
    if decision == "top1":
        top = scores.argmax(axis=1)
        kinds = np.where(top == s, "shape", np.where(top == t, "texture", "neither"))
    elif decision == "pair":
        kinds = np.where(scores[rows, s] >= scores[rows, t], "shape", "texture")
    else:
        raise ValueError(f"decision must be 'top1' or 'pair', got {decision!r}")
    n_shape, n_texture = int((kinds == "shape").sum()), int((kinds == "texture").sum())
    decided = n_shape + n_texture
    return dict(shape_fraction=n_shape / decided if decided else float("nan"), shape=n_shape,
                texture=n_texture, neither=len(kinds) - decided, n=len(kinds), decisions=kinds)


def shape_bias(model, images, shape_labels, texture_labels, *, decision="top1", class_map=None,
               batch_size=64):
    """Run ``model`` on cue-conflict ``images`` (N, C, H, W, preprocessed) and count its
    shape vs texture decisions (see ``decision_fractions``); labels are categories when
    ``class_map`` is given, else classes."""
    x = as_input(model, images).data
    logits = predict(model, x, batch_size)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    scores = p if class_map is None else category_scores(p, class_map)
    return decision_fractions(scores, shape_labels, texture_labels, decision)


def cue_conflict_images(model, contents, styles, shape_labels, texture_labels, *,
                        content_layer, style_layers, steps=50, style_weight=1e-2,
                        tv_weight=0.0, optimizer="lbfgs", progress=False, **options):
    """Style-transfer each content image (the shape) with the style image of the same index
    (the texture): contents, styles (N, C, H, W) preprocessed, labels (N,) all different
    pairwise. Other options go to ``style.style_transfer``. Returns a dict: images
    (N, C, H, W) NumPy, shape_labels, texture_labels, losses (final style-transfer loss)."""
    from tqdm.auto import tqdm
    from .style import style_transfer
    contents, styles = np.asarray(contents), np.asarray(styles)
    if contents.ndim != 4 or styles.ndim != 4 or len(contents) != len(styles):
        raise ValueError(f"contents and styles must be batches (N, C, H, W) of the same length, "
                         f"got {contents.shape} and {styles.shape}")
    s, t = _check_labels(shape_labels, texture_labels, len(contents))
    images, losses = [], []
    for n in tqdm(range(len(contents)), disable=not progress, desc="cue conflict"):
        img, hist = style_transfer(model, contents[n:n + 1], styles[n:n + 1], content_layer,
                                   style_layers, steps, style_weight=style_weight,
                                   tv_weight=tv_weight, optimizer=optimizer, **options)
        images.append(img[0])
        losses.append(hist["loss"][-1])
    return dict(images=np.stack(images), shape_labels=s, texture_labels=t,
                losses=np.array(losses))
