"""Transforms and regularizers for the image-optimization loop (``optimize.ascend``).

Transforms ``t(x: Tensor, rng) -> Tensor`` are built from differentiable ops, so
backward undoes them (a rolled image's gradient is rolled back): jitter, roll,
pad, scale, resize, blur. Regularizers ``r(x, g, step) -> x`` act on the image
array after each update (Yosinski et al. 2015): L2 decay, periodic Gaussian
blur, clipping pixels of small norm, clipping pixels of small contribution.
A preconditioner ``p(g) -> g`` reshapes the gradient before the update: ``spectral`` and
``colour_correlated`` (Olah et al. 2017's Fourier and decorrelated-colour parameterizations,
as filters on each step).
"""
import numpy as np

from .. import ops
from ..autograd import Tensor
from ..backend import get_array_module, like

__all__ = ["roll", "jitter", "pad", "scale", "resize_to", "blur", "resize", "gaussian_blur",
           "decay", "blur_every", "clip_norm", "clip_contribution", "spectral",
           "colour_correlated"]


# ================================================================ transforms
# Every transform is t(x: Tensor, rng) -> Tensor made of differentiable ops.

def _separable(x, a, b):
    """y = A x Bᵀ on the last two axes of x (N, C, H, W): A (H', H), B (W', W).
    Resizing and blurring are both this linear map; a Tensor keeps its graph."""
    a, b = like(a, x), like(b, x)
    if not isinstance(x, Tensor):
        return a @ x @ b.T
    n, c, h, w = x.shape
    y = ops.matmul(x.reshape(n * c * h, w), b.T)                          # rows: x Bᵀ
    y = y.reshape(n, c, h, b.shape[0]).transpose(0, 1, 3, 2).reshape(n * c * b.shape[0], h)
    y = ops.matmul(y, a.T)                                                # columns: A (·)
    return y.reshape(n, c, b.shape[0], a.shape[0]).transpose(0, 1, 3, 2)


def _interp_matrix(n_out, n_in, dtype):
    """Bilinear weights (n_out, n_in) with half-pixel centres (as PIL and align_corners=False)."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), i0), 1 - (pos - i0))
    np.add.at(m, (np.arange(n_out), i1), pos - i0)
    return m.astype(dtype)


def _blur_matrix(n, sigma, dtype):
    """Circular Gaussian (n, n): every row and column sums to 1, so blurring keeps the mean."""
    d = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    d = np.minimum(d, n - d)
    m = np.exp(-0.5 * (d / sigma) ** 2)
    return (m / m.sum(axis=1, keepdims=True)).astype(dtype)


def resize(x, size):
    """Bilinear resize of images (N, C, H, W) — Tensor or array — to ``size`` = (H', W')."""
    h, w = x.shape[-2:]
    return _separable(x, _interp_matrix(int(size[0]), h, x.dtype),
                      _interp_matrix(int(size[1]), w, x.dtype))


def gaussian_blur(x, sigma):
    """Circular Gaussian blur of standard deviation ``sigma`` pixels (Tensor or array)."""
    if sigma <= 0:
        raise ValueError(f"gaussian_blur: sigma must be > 0, got {sigma}")
    h, w = x.shape[-2:]
    return _separable(x, _blur_matrix(h, sigma, x.dtype), _blur_matrix(w, sigma, x.dtype))


def roll(x, dy, dx):
    """Circular shift of a Tensor's last two axes by (dy, dx), like np.roll: two slices + concat."""
    h, w = x.shape[-2:]
    dy, dx = dy % h, dx % w
    if dy:
        x = ops.concat([x[..., h - dy:, :], x[..., :h - dy, :]], axis=x.ndim - 2)
    if dx:
        x = ops.concat([x[..., :, w - dx:], x[..., :, :w - dx]], axis=x.ndim - 1)
    return x


def jitter(d):
    """Transform: roll by a random (dy, dx) in [−d, d]² each step (Mordvintsev; Yosinski)."""
    def transform(x, rng):
        dy, dx = rng.integers(-d, d + 1, size=2)
        return roll(x, int(dy), int(dx))
    return transform


def pad(p, value=0.0):
    """Transform: pad by ``p`` pixels of ``value`` (0 = the mean image in preprocessed space)."""
    return lambda x, rng: ops.pad(x, p, value)


def scale(factors):
    """Transform: resize by a factor drawn from ``factors`` each step (fully convolutional nets)."""
    def transform(x, rng):
        s = factors[int(rng.integers(len(factors)))]
        return resize(x, (round(x.shape[-2] * s), round(x.shape[-1] * s)))
    return transform


def resize_to(size):
    """Transform: resize to a fixed (H, W) — lets a coarse image feed a fixed-size model."""
    return lambda x, rng: resize(x, size)


def blur(sigma):
    """Transform: Gaussian blur before the model (the model sees only low frequencies)."""
    return lambda x, rng: gaussian_blur(x, sigma)


# ============================================================== regularizers
# Every regularizer is r(x: array, g: array, step) -> array, applied after the update
# (Yosinski et al. 2015, "Understanding neural networks through deep visualization").

def _percentile_mask(m, percentile):
    """m (N, 1, H, W) -> 1 where m >= its per-image ``percentile``, else 0."""
    xp = get_array_module(m)
    thr = xp.percentile(m.reshape(m.shape[0], -1), percentile, axis=1)
    return (m >= thr.reshape(-1, 1, 1, 1)).astype(m.dtype)


def _check_percentile(who, p):
    if not 0 <= p < 100:
        raise ValueError(f"{who}: percentile must be in [0, 100), got {p}")


def decay(theta):
    """I ← (1 − θ) I: L2 decay toward the mean image (0 in preprocessed space)."""
    if not 0 <= theta < 1:
        raise ValueError(f"decay: theta must be in [0, 1), got {theta}")
    return lambda x, g, step: x * (1 - theta)


def blur_every(sigma, every=4):
    """Every ``every`` steps, blur the image with a Gaussian of ``sigma`` pixels."""
    if sigma <= 0 or every < 1:
        raise ValueError(f"blur_every: need sigma > 0 and every >= 1, got {sigma}, {every}")
    return lambda x, g, step: gaussian_blur(x, sigma) if step % every == 0 else x


def clip_norm(percentile):
    """Zero the pixels whose norm over channels ‖I[:, i, j]‖ is below the per-image percentile."""
    _check_percentile("clip_norm", percentile)

    def regularize(x, g, step):
        xp = get_array_module(x)
        return x * _percentile_mask(xp.sqrt((x * x).sum(axis=1, keepdims=True)), percentile)
    return regularize


def clip_contribution(percentile):
    """Zero the pixels of small contribution |Σ_c I ⊙ ∂f/∂I| (the linear estimate of how much
    the objective would drop if that pixel were set to zero) below the per-image percentile."""
    _check_percentile("clip_contribution", percentile)

    def regularize(x, g, step):
        xp = get_array_module(x)
        return x * _percentile_mask(xp.abs((x * g).sum(axis=1, keepdims=True)), percentile)
    return regularize


# =========================================================== preconditioners
def spectral(power=1.0):
    """g ← F⁻¹( F(g) / f^power ): each spatial frequency f of the step (cycles per image,
    at least 1) scaled down as in natural images' spectra.

    Olah et al. 2017 (Lucid) optimize the image's Fourier coefficients scaled by 1/f; a
    gradient step on those coefficients moves the image by the gradient filtered with
    1/f² — this filter with power 2. Raw gradients of a deep net are mostly high-frequency
    (a speckle of every colour); the filtered steps build shapes instead.
    """
    if power < 0:
        raise ValueError(f"spectral: power must be >= 0, got {power}")

    def precondition(g):
        xp = get_array_module(g)
        h, w = g.shape[-2:]
        fy = xp.abs(xp.fft.fftfreq(h) * h)[:, None]
        fx = (xp.fft.rfftfreq(w) * w)[None, :]
        scale = 1.0 / xp.maximum(xp.sqrt(fy * fy + fx * fx), 1.0) ** power
        return xp.fft.irfft2(xp.fft.rfft2(g) * scale, s=(h, w)).astype(g.dtype)
    return precondition


# Lucid's square root of ImageNet's colour correlation (RGB): natural colours are mostly
# brightness, little hue; its columns are the image's colour directions, by strength.
COLOUR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02],
                                    [0.27, 0.00, -0.05],
                                    [0.27, -0.09, 0.03]])


def colour_correlated():
    """g ← M g at every pixel, M = C Cᵀ / ‖C Cᵀ‖ (C: ``COLOUR_CORRELATION_SQRT``): the step
    an optimizer makes in decorrelated colour space u (image I = C u), seen in RGB. Steps
    change brightness far more than hue, as in photos, instead of a speckle of every colour."""
    m = COLOUR_CORRELATION_SQRT @ COLOUR_CORRELATION_SQRT.T
    m = m / np.linalg.norm(m, 2)

    def precondition(g):
        if g.shape[1] != 3:
            raise ValueError(f"colour_correlated: needs RGB images (N, 3, H, W), got a gradient "
                             f"of shape {tuple(g.shape)}")
        return (like(m.astype(g.dtype), g)[None, :, :, None, None] *
                g[:, None, :, :, :]).sum(axis=2)
    return precondition
