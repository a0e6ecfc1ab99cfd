"""Common corruptions at 5 severities, ImageNet-C style (Hendrycks & Dietterich 2019), NumPy/SciPy.

    y = corrupt(images, "motion_blur", severity=3, seed=0)      # same shape, dtype and range
    table = corruption_accuracy(model, images, labels)          # {"clean": a, name: [a_1..a_5]}
    mce = mean_corruption_error(table, baseline_table)          # CE per corruption and mCE

Images are pixels: uint8 in [0, 255] or float in [0, 1], shaped (H, W), (H, W, C), (N, H, W)
or (N, H, W, C) (C = 1 or 3). Each corruption works on [0, 1] floats and returns the input's
shape and dtype, clipped to its range. Severity 0 is the identity; randomness (noise, blur
angles, glass displacements) comes from ``seed`` only, so a call is reproducible.

    gaussian_noise   x + N(0, σ²)                     shot_noise   Poisson(λx)/λ  (photon noise)
    impulse_noise    a fraction of values set to 0 or 1 (salt and pepper)
    defocus_blur     x ∗ disk(r)                      motion_blur  x ∗ line(length, random angle)
    glass_blur       blur, each pixel takes a random neighbour's value (±d), blur again
    zoom_blur        mean of the image zoomed about its centre by 1, …, z_max
    brightness       V + c in HSV (H, S kept: RGB scaled by V'/V)
    contrast         mean + c·(x − mean)              jpeg_compression  Pillow JPEG at quality q

Parameters are chosen for 28–32 pixel images (Fashion-MNIST, CIFAR-10); errors grow with the
severity. mCE (Hendrycks & Dietterich): CE_c = Σ_s E_{s,c} / Σ_s E^{baseline}_{s,c},
mCE = mean_c CE_c; a model with mCE < 1 is more robust than the baseline.
"""
import io

import numpy as np
from scipy import ndimage

__all__ = ["CORRUPTIONS", "corrupt", "corruption_accuracy", "corruption_errors",
           "mean_corruption_error"]

SEVERITY_PARAMS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.10, 0.13),        # σ
    "shot_noise": (500, 250, 100, 60, 30),                    # λ photons at full intensity
    "impulse_noise": (0.01, 0.02, 0.04, 0.07, 0.10),         # fraction of values hit
    "defocus_blur": (0.6, 0.9, 1.2, 1.6, 2.0),               # disk radius (pixels)
    "glass_blur": ((0.4, 1, 1), (0.5, 1, 2), (0.7, 1, 2), (0.7, 2, 2), (0.9, 2, 3)),  # σ, d, n
    "motion_blur": (3, 5, 7, 9, 12),                          # line length (pixels)
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),             # largest zoom
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),                 # added to V
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.2),                  # factor on x − mean
    "jpeg_compression": (60, 40, 25, 15, 8),                  # JPEG quality
}
CORRUPTIONS = tuple(SEVERITY_PARAMS)


# -------------------------------------------------------------- the corruptions
# Each takes x (N, H, W, C) float64 in [0, 1], the severity's parameter, an rng.

def _gaussian_noise(x, sigma, rng):
    return x + rng.normal(0.0, sigma, x.shape)


def _shot_noise(x, lam, rng):
    return rng.poisson(x * lam) / lam


def _impulse_noise(x, amount, rng):
    hit = rng.random(x.shape) < amount
    return np.where(hit, (rng.random(x.shape) < 0.5).astype(x.dtype), x)


def _filter(x, kernels):
    """Correlate each image (N, H, W, C) with its own (kh, kw) kernel (or one for all)."""
    if kernels.ndim == 2:
        return ndimage.correlate(x, kernels[None, :, :, None], mode="reflect")
    return np.stack([ndimage.correlate(im, k[:, :, None], mode="reflect")
                     for im, k in zip(x, kernels)])


def _disk(radius, supersample=8):
    """Anti-aliased disk of ``radius`` pixels: the share of each pixel inside the circle."""
    r = int(np.ceil(radius))
    t = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.arange(-r, r + 1)
    yy = grid[:, None, None, None] + t[None, None, :, None]
    xx = grid[None, :, None, None] + t[None, None, None, :]
    k = ((yy ** 2 + xx ** 2) <= radius ** 2).mean(axis=(2, 3))
    return k / k.sum()


def _defocus_blur(x, radius, rng):
    return _filter(x, _disk(radius))


def _line(length, angle, supersample=16):
    """A line of ``length`` pixels through the centre at ``angle`` (radians), summing to 1."""
    r = length // 2 + 1
    k = np.zeros((2 * r + 1, 2 * r + 1))
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, length * supersample)
    rows = np.round(r - t * np.sin(angle)).astype(int)
    cols = np.round(r + t * np.cos(angle)).astype(int)
    np.add.at(k, (rows, cols), 1.0)
    return k / k.sum()


def _motion_blur(x, length, rng):
    angles = rng.uniform(-np.pi, np.pi, len(x))
    return _filter(x, np.stack([_line(length, a) for a in angles]))


def _glass_blur(x, params, rng):
    sigma, d, iterations = params
    blur = (0, sigma, sigma, 0)
    x = ndimage.gaussian_filter(x, blur, mode="reflect")
    n, h, w, _ = x.shape
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for _ in range(iterations):
        di, dj = rng.integers(-d, d + 1, (2, n, h, w))
        src_i, src_j = np.clip(ii + di, 0, h - 1), np.clip(jj + dj, 0, w - 1)
        x = x[np.arange(n)[:, None, None], src_i, src_j]
    return ndimage.gaussian_filter(x, blur, mode="reflect")


def _zoom_matrix(n, z):
    """(n, n) bilinear weights sampling positions c + (i − c)/z, c the centre (zoom in by z)."""
    c = (n - 1) / 2
    pos = np.clip(c + (np.arange(n) - c) / z, 0, n - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    m = np.zeros((n, n))
    np.add.at(m, (np.arange(n), i0), 1 - (pos - i0))
    np.add.at(m, (np.arange(n), i1), pos - i0)
    return m


def _zoom_blur(x, z_max, rng):
    h, w = x.shape[1:3]
    zooms = np.arange(1.0, z_max + 1e-9, 0.01)
    xt = x.transpose(0, 3, 1, 2)                                   # (N, C, H, W)
    out = sum(_zoom_matrix(h, z) @ xt @ _zoom_matrix(w, z).T for z in zooms) / len(zooms)
    return out.transpose(0, 2, 3, 1)


def _brightness(x, c, rng):
    v = x.max(axis=3, keepdims=True)               # V of HSV; RGB = V · f(H, S)
    v_new = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * v_new / np.where(v > 0, v, 1), v_new)


def _contrast(x, c, rng):
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return mean + c * (x - mean)


def _jpeg_compression(x, quality, rng):
    from PIL import Image
    out = []
    for im in np.round(x * 255).astype(np.uint8):
        buf = io.BytesIO()
        Image.fromarray(im[..., 0] if im.shape[2] == 1 else im).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        back = np.asarray(Image.open(buf), dtype=np.float64) / 255
        out.append(back.reshape(im.shape))
    return np.stack(out)


_FUNCTIONS = {name: globals()[f"_{name}"] for name in CORRUPTIONS}


# -------------------------------------------------------------- the public call
def _as_batch(images):
    """images -> (x (N, H, W, C) float64 in [0, 1], a function restoring shape/dtype/range)."""
    a = np.asarray(images)
    if a.dtype == np.uint8:
        x, restore_dtype = a.astype(np.float64) / 255, lambda y: np.round(y * 255).astype(np.uint8)
    elif a.dtype.kind == "f":
        if a.size and (np.nanmin(a) < 0 or np.nanmax(a) > 1):
            raise ValueError(f"corrupt: float images must be in [0, 1], got values in "
                             f"[{np.nanmin(a):.3g}, {np.nanmax(a):.3g}] (uint8 images: 0–255)")
        x, restore_dtype = a.astype(np.float64), lambda y: y.astype(a.dtype)
    else:
        raise TypeError(f"corrupt: images must be uint8 (0–255) or float (0–1), got {a.dtype}")
    shape = a.shape
    if a.ndim == 2:
        x = x[None, :, :, None]
    elif a.ndim == 3:
        x = x[None] if shape[-1] in (1, 3) else x[..., None]     # (H, W, C) or (N, H, W)
    elif a.ndim != 4 or shape[-1] not in (1, 3):
        raise ValueError(f"corrupt: expected images (H, W), (H, W, C), (N, H, W) or "
                         f"(N, H, W, C) with C = 1 or 3, got shape {shape}")
    return x, lambda y: restore_dtype(np.clip(y, 0, 1)).reshape(shape)


def corrupt(images, name, severity, seed=0):
    """``images`` with corruption ``name`` at ``severity`` (0 = unchanged copy, 1..5)."""
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or not 0 <= severity <= 5:
        raise ValueError(f"severity must be an int in 1..5 (or 0 for the clean image), "
                         f"got {severity!r}")
    x, restore = _as_batch(images)
    if severity == 0:
        return np.array(images, copy=True)
    y = _FUNCTIONS[name](x, SEVERITY_PARAMS[name][severity - 1], np.random.default_rng(seed))
    return restore(y)


# -------------------------------------------------------------- evaluation
def corruption_accuracy(model, images, labels, names=CORRUPTIONS, severities=(1, 2, 3, 4, 5),
                        seed=0, batch_size=500, progress=False):
    """Top-1 accuracy of ``model`` on uint8 ``images`` (preprocessed with model.preprocess)
    under each corruption and severity. Returns {"clean": acc, name: [acc per severity]}."""
    from tqdm.auto import tqdm
    from ..training.loop import predict
    labels = np.asarray(labels)
    if getattr(model, "preprocess", None) is None:
        raise ValueError("corruption_accuracy corrupts pixels and needs model.preprocess to turn "
                         "them into the model's input")

    def accuracy(imgs):
        x = model.preprocess.preprocess(imgs)
        return float((predict(model, x, batch_size).argmax(axis=1) == labels).mean())
    for name in names:
        if name not in _FUNCTIONS:
            raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    table = {"clean": accuracy(images)}
    jobs = [(n, s) for n in names for s in severities]
    for k, (name, s) in enumerate(tqdm(jobs, disable=not progress, desc="corruptions")):
        table.setdefault(name, []).append(accuracy(corrupt(images, name, s, seed + k)))
    return table


def corruption_errors(table):
    """{name: E_{s,c} = 1 − accuracy per severity} from a ``corruption_accuracy`` table."""
    return {k: 1 - np.asarray(v) for k, v in table.items() if k != "clean"}


def mean_corruption_error(table, baseline):
    """CE_c = Σ_s E_{s,c} / Σ_s E^{base}_{s,c} and mCE = mean_c CE_c; also the relative
    versions (errors minus the clean error). Returns a dict: ce, mce, relative_ce,
    relative_mce (relative values are nan where the baseline does not degrade)."""
    err, base = corruption_errors(table), corruption_errors(baseline)
    missing = set(err) ^ set(base)
    if missing:
        raise ValueError(f"the table and the baseline must cover the same corruptions; "
                         f"differ on {sorted(missing)}")
    ce = {c: float(err[c].sum() / base[c].sum()) for c in err}
    clean, clean_base = 1 - table["clean"], 1 - baseline["clean"]
    rel = {}
    for c in err:
        denom = (base[c] - clean_base).sum()
        rel[c] = float((err[c] - clean).sum() / denom) if denom > 0 else float("nan")
    return dict(ce=ce, mce=float(np.mean(list(ce.values()))), relative_ce=rel,
                relative_mce=float(np.nanmean(list(rel.values()))) if rel else float("nan"))
