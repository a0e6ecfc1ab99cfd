"""Grad-CAM and guided Grad-CAM (Selvaraju et al., ICCV 2017), and the bilinear resize they need.

Grad-CAM weighs the feature maps A^k of one layer by how much the class score y^c
grows with each of them, on average over the map:

    α_k = (1 / Z) Σ_{i,j} ∂y^c / ∂A^k_{ij}          (global-average-pooled gradient)
    L   = ReLU( Σ_k α_k A^k )                        (relu=False keeps the negative evidence)

then upsamples L (h × w, e.g. 13 × 13) bilinearly to the input size. Guided Grad-CAM
multiplies that map into guided backprop's image, pixel by pixel: class-discriminative
*and* high-resolution. Any layer name works; the default is ``model.default_cam_layer``
(the last conv block), so nets without ``.features`` (ResNet-18, EfficientNet) work too.

    cam = grad_cam(model, x, target=281)                 # (H, W), the input's size
    ggc = guided_grad_cam(model, x, target=281)          # (C, H, W)
    (a, b), (cam_a, cam_b), r = most_different_classes(model, x, k=5)   # two objects, r ≪ 1
"""
import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..backend import get_array_module, like, to_numpy
from ..nn import capture
from .common import check_layer
from .common import frozen
from .gradients import backward_from_target, guided_backprop, image_batch

__all__ = ["grad_cam", "guided_grad_cam", "most_different_classes", "bilinear_resize",
           "cam_layer"]


def _interpolation_matrix(xp, n_in, n_out, dtype):
    """R (n_out, n_in) with (R v)[o] = linear interpolation of v at the source coordinate

        s = (o + 0.5) · n_in / n_out − 0.5      (pixel centres line up: align_corners=False)

    clamped to [0, n_in − 1]: rows hold weights 1 − t and t on v[⌊s⌋] and v[⌊s⌋ + 1]."""
    s = (xp.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    s = xp.clip(s, 0, n_in - 1)
    lo = xp.floor(s).astype(np.int64)
    hi = xp.minimum(lo + 1, n_in - 1)
    t = s - lo
    rows = xp.arange(n_out)
    r = xp.zeros((n_out, n_in), dtype=np.float64)
    r[rows, lo] += 1 - t
    r[rows, hi] += t
    return r.astype(dtype)


def bilinear_resize(m, size):
    """Resize maps m (..., h, w) to (..., H, W) by bilinear interpolation, align_corners=False
    (PyTorch's ``interpolate(mode="bilinear")`` without antialiasing). Separable: out =
    R_h · m · R_wᵀ with the interpolation matrices above. NumPy or CuPy, as m."""
    xp = get_array_module(m)
    H, W = size
    h, w = m.shape[-2:]
    dtype = m.dtype if m.dtype.kind == "f" else np.float64
    r_h = _interpolation_matrix(xp, h, H, dtype)
    r_w = _interpolation_matrix(xp, w, W, dtype)
    return r_h @ m.astype(dtype, copy=False) @ r_w.T


def cam_layer(model, layer=None):
    """``layer``, checked, or the model's ``default_cam_layer`` (an error if it has none)."""
    if layer is None:
        layer = getattr(model, "default_cam_layer", None)
        if layer is None:
            raise ValueError(f"{type(model).__name__} has no default_cam_layer: pass layer=..., "
                             f"one of {', '.join(model.layer_names())}")
    return check_layer(model, layer)


def grad_cam(model, x, target, layer=None, relu=True, upsample=True):
    """Grad-CAM map of class ``target`` at ``layer`` (default ``model.default_cam_layer``).

    x: (C, H, W) or (N, C, H, W); target: class index (or one per image, or
    fn(logits) -> scores, see gradients.py). Returns (H, W) (or (N, H, W)) at the input
    size; upsample=False keeps the layer's h × w. relu=False: the raw weighted sum,
    negative where the maps speak against the class. NumPy, not normalized.
    """
    layer = cam_layer(model, layer)
    # BEGIN SOLUTION
    with frozen(model, eval_mode=False):
        xt, single = image_batch(model, x, requires_grad=True)
        with capture(model, [layer]) as acts:
            logits = model(xt)
        backward_from_target(logits, target)
    a, g = acts[layer].data, acts[layer].grad
    if g is None:
        raise ValueError(f"the score of target {target!r} does not depend on layer {layer!r}")
    if a.ndim != 4:
        raise ValueError(f"Grad-CAM needs a layer with spatial maps (N, C, h, w); {layer!r} "
                         f"gives {a.shape}")
    alpha = g.mean(axis=(2, 3), keepdims=True)            # (N, K, 1, 1)
    cam = (alpha * a).sum(axis=1)                          # (N, h, w)
    if relu:
        cam = cam * (cam > 0)
    if upsample:
        cam = bilinear_resize(cam, xt.shape[2:])
    cam = to_numpy(cam)
    return cam[0] if single else cam
    # END SOLUTION


def guided_grad_cam(model, x, target, layer=None):
    """Guided Grad-CAM: guided_backprop(x) ⊙ grad_cam(x) (ReLU'd, upsampled), shape of x."""
    cam = grad_cam(model, x, target, layer)
    gb = guided_backprop(model, x, target)
    return gb * np.expand_dims(cam, -3)


def most_different_classes(model, x, k=5, layer=None, score="logit"):
    """Two classes of one photo whose Grad-CAM maps differ most: the top class a, and the one b
    of the k most probable whose map correlates least with a's — two objects of the photo
    (a uniform and a tie) rather than two names of one object (gown and mortarboard).

    x: one image (C, H, W). score: "logit" (y^c, as the paper) or "probability" (softmax
    p^c = the logit minus what all classes share: SqueezeNet's class maps all fire on the
    same object, their logits' maps are alike, their probabilities' are not). Returns
    ((a, b), (cam_a, cam_b), r), r the Pearson correlation of the two maps. One batched
    pass computes all k maps.
    """
    if score not in ("logit", "probability"):
        raise ValueError(f"score must be 'logit' or 'probability', got {score!r}")
    xt, _ = image_batch(model, x)
    if xt.shape[0] != 1 or k < 2:
        raise ValueError(f"most_different_classes needs one image and k >= 2; got x of shape "
                         f"{xt.shape}, k={k}")
    with no_grad(), frozen(model, eval_mode=False):
        logits = to_numpy(model(xt).data)[0]
    top = [int(t) for t in np.argsort(-logits, kind="stable")[:k]]
    if score == "probability":
        pick = np.zeros((len(top), len(logits)), dtype=logits.dtype)
        pick[range(len(top)), top] = 1                    # row i scores p(top[i]) of copy i

        def target(z):
            return (ops.softmax(z, axis=1) * Tensor(like(pick, z.data))).sum()
    else:
        target = top                                      # copy i scores logit top[i]
    cams = grad_cam(model, xt.data.repeat(len(top), axis=0), target, layer)     # (k, H, W)
    r = [float(np.corrcoef(cams[0].ravel(), c.ravel())[0, 1]) for c in cams[1:]]
    j = 1 + int(np.argmin(r))
    return (top[0], top[j]), (cams[0], cams[j]), r[j - 1]
