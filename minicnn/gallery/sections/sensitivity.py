"""Sections 6–7: occlusion and the gradient maps (saliency, SmoothGrad, integrated gradients,
saliency segmentation) — how sensitive the class score is to each part of the image."""
import numpy as np

from ..figure import Figure
from ._common import _grid, _img, _models, _name, _try, section


# ============================================================ sensitivity
@section("occlusion", "6 · Occlusion")
def occlusion_section(ctx):
    from ...plot.attribution import occlusion_figure
    from ...techniques.occlusion import occlusion
    formula = ("drop in p: p(c | x) − p(c | x with a patch at (r, s)), per pixel the mean "
               "over the patches covering it")
    paper = "Zeiler & Fergus 2014, Fig. 7"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        # a 10×10 patch hides a sleeve or a heel of a 28×28 item (8×8 patches moved the
        # 99.7%-confident T-shirt by at most 0.10); on Fashion-MNIST's black background a
        # black patch removes what it covers, where a grey one adds a square to the picture
        size, stride = 10, ctx.pick(3, 2)
        fill = "black" if small.name == "fashion_net" else "gray"
        for i in range(ctx.pick(1, 3)):
            def build(i=i):
                x, pix, labels, _ = ctx.samples(ctx.pick(1, 3))
                t = ctx.target(small, x[i:i + 1], labels[i])
                res = occlusion(small.model, x[i], t, size, stride, fill, batch_size=64)
                return occlusion_figure(pix[i], res, small.labels)
            figs.append(Figure(f"{small.name}-{i}", build, "occlusion sensitivity", formula,
                               paper, {"patch": size, "stride": stride, "fill": fill}, small))
    photo = _try(lambda: ctx.photo)
    if photo is not None and not ctx.quick:
        def build_photo():
            name, x, pix = ctx.photos()[0]
            res = occlusion(photo.model, x, None, 48, 24, "gray", batch_size=16)
            return occlusion_figure(pix, res, [_name(photo, k) for k in range(len(photo.labels))])
        figs.append(Figure(f"{photo.name}-photo", build_photo, "occlusion sensitivity", formula,
                           paper, {"patch": 48, "stride": 24, "fill": "gray"}, photo))
    elif photo is not None:
        ctx.full_only("occlusion")
    if not figs:
        _models(ctx)                                   # raises Skip with the reasons
    return figs


def _magnitude(m, title=None, bar="|map| / p99"):
    """A cell: max over channels of |m| (C, H, W), scaled to its 99th percentile, colour bar."""
    from ...plot.attribution import add_colorbar
    from ...plot.core import normalize_map

    def draw(ax):
        im = ax.imshow(normalize_map(np.abs(m).max(axis=0)), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=8)
        add_colorbar(ax, im, bar)
    return draw


def black_image(info, x):
    """The black image (pixels 0) in the model's input space, shape of x (C, H, W): the
    baseline of integrated gradients (on Fashion-MNIST's black background x − x' is then 0,
    so the attribution there is exactly 0; on a photo, "no light" rather than the mean grey)."""
    pre = info.preprocess
    shape = x.shape[1:] if pre.channels == 1 else x.shape[1:] + (pre.channels,)
    return pre.preprocess(np.zeros(shape, np.uint8))[0].astype(x.dtype)


# the saliency figure's settings: (SmoothGrad samples, noise, kind; IG steps; the power of
# the plain gradient drawn beside SmoothGrad) per model kind
SALIENCY_SETTINGS = {"small": dict(n=32, noise=0.15, kind="gradient", steps=128, power=1),
                     "photo": dict(n=16, noise=0.3, kind="square", steps=64, power=2)}


def plain_saliency(m):
    """The saliency figure's plain map (H, W) from its maps ``m``: max over channels of
    |∂y/∂x|^power, at the power of the SmoothGrad beside it (on a photo SmoothGrad² is a mean
    of (∂y/∂x)²: the single gradient squared is the same quantity without the noise, and
    its share of mass in a box compares like with like; |∂y/∂x| against a mean of squares
    would credit the squaring to the noise)."""
    return np.abs(m["saliency"]).max(axis=0) ** m["power"]


def saliency_maps(info, x, t, seed=0, quick=False, with_ig=True):
    """The saliency figure's maps of one image x (C, H, W) for class t, at the gallery's
    settings: {"saliency": ∂y/∂x, "smoothgrad": …, "ig": …, "ig_gap": completeness gap}
    ("ig" None without ``with_ig``: on a photo it costs 64 passes).

    fashion_net: SmoothGrad of the signed gradient times (x − black) — on a black
    background the gradient is large where *adding* light would change the class, so any
    gradient map is brightest on the empty canvas; times the input it keeps what is there.
    Photos: SmoothGrad-Squared (mean of (∂y/∂x)², Hooker et al. 2019), which lets the few
    strong gradients on the object outweigh the speckle. IG: from the black image, steps
    placed where the score rises (``adaptive_integrated_gradients``)."""
    from ...techniques.gradients import (adaptive_integrated_gradients, input_gradient,
                                         smoothgrad)
    cfg = SALIENCY_SETTINGS[info.kind]
    n, steps = (max(4, cfg["n"] // 2), max(16, cfg["steps"] // 4)) if quick else \
        (cfg["n"], cfg["steps"])
    batch = 32 if info.kind == "small" else 8
    black = black_image(info, x)
    sg = smoothgrad(info.model, x, t, n_samples=n, noise_level=cfg["noise"],
                    batch_size=min(n, batch), seed=seed, kind=cfg["kind"])
    if info.kind == "small":
        sg = sg * (x - black)
    ig, gap = adaptive_integrated_gradients(info.model, x, t, black, steps=steps,
                                            batch_size=batch) if with_ig else (None, None)
    return {"saliency": input_gradient(info.model, x, t), "smoothgrad": sg, "ig": ig,
            "ig_gap": gap, "n": n, "steps": steps, "power": cfg["power"]}


@section("saliency", "7 · Saliency maps, SmoothGrad, integrated gradients")
def saliency_section(ctx):
    from ...techniques.common import mass_in_box
    maps = {}                            # the photo's maps, shared with the segmentation

    def row(info, x, pix, t, name=None, with_ig=True):
        m = maps[(info.name, name)] = saliency_maps(info, x, t, ctx.seed, ctx.quick, with_ig)
        box = _photo_box(name, pix.shape[0]) if name else None
        chance = (box[2] - box[0]) * (box[3] - box[1]) / (pix.shape[0] * pix.shape[1]) \
            if box else None

        def inside(a):
            a = np.abs(a).max(axis=0) if a.ndim == 3 else a
            return f"\n{mass_in_box(a, box):.0%} in the box (chance {chance:.0%})" if box \
                else ""
        plain = plain_saliency(m)
        plain_title = ("saliency |∂y/∂x|, one gradient" if m["power"] == 1 else
                       "saliency (∂y/∂x)², one gradient\n(squared like SmoothGrad²)")
        sg_title = (f"SmoothGrad ⊙ (x − black):\nmean ∂y/∂x, {m['n']} noisy copies"
                    if info.kind == "small" else
                    f"SmoothGrad²: mean (∂y/∂x)²,\n{m['n']} noisy copies")
        return [_box_img(pix, _name(info, t) + (f"\nbox: the {_box_what(name)}, {chance:.0%} "
                                                 "of the image" if box else ""), box),
                _magnitude(plain[None], plain_title + inside(plain),
                           "|map| / p99" if m["power"] == 1 else "map / p99"),
                _magnitude(m["smoothgrad"], sg_title + inside(m["smoothgrad"])),
                None if m["ig"] is None else
                _magnitude(m["ig"], f"IG from black, {m['steps']} steps:\n"
                                    f"ΣIG misses Δy by {m['ig_gap']:.1%}" + inside(m["ig"]))]

    def figure(info):
        def build():
            if info.kind == "small":
                xs, pixs, labels, _ = ctx.samples(ctx.pick(3, 5))
                names = [None] * len(xs)
            else:
                ph = ctx.photos()[:ctx.pick(1, None)]        # --quick: the first photo only
                xs, pixs, labels = [p.x[0] for p in ph], [p.pixels for p in ph], [None] * len(ph)
                names = [p.name for p in ph]
            # a photo's IG takes 64 passes: shown for the first (main) photo only
            return _grid([row(info, x, pix, ctx.target(info, x[None], lab), name,
                              with_ig=info.kind == "small" or k == 0)
                          for k, (x, pix, lab, name) in enumerate(zip(xs, pixs, labels, names))],
                         cell=2.6)
        cfg = SALIENCY_SETTINGS[info.kind]
        if info.kind == "small":
            sg = ("SmoothGrad ⊙ (x − black): the signed mean of ∂y_c/∂x over "
                  "x + N(0, (0.15·range)²), times the input's difference from black (on a "
                  "black background the gradient is largest where adding light would change "
                  "the class; times the input it keeps what is there)")
        else:
            sg = ("SmoothGrad²: mean of (∂y_c/∂x)² over x + N(0, (0.3·range)²) (Hooker et al. "
                  "2019's SmoothGrad-Squared: the strong gradients on the object outweigh the "
                  "speckle; the red box is the object's, the titles give each map's share of "
                  "mass in it and the box's share of the image: what a map spread evenly "
                  "would score)")
        plain = ("saliency S = max_ch |∂y_c/∂x|" if cfg["power"] == 1 else
                 "saliency S = max_ch (∂y_c/∂x)² (one gradient, squared as SmoothGrad² "
                 "squares each of its gradients, so the two shares of mass in the box compare "
                 "like with like)")
        return Figure(f"{info.name}-saliency", build,
                      "saliency beside SmoothGrad and integrated gradients",
                      plain + ";  " + sg + ";  IG: (x − x')·∫ ∂y_c/∂x "
                      "along x' → x from the black image x', trapezoids refined where their "
                      "sum misses the score's rise; Σ IG = y_c(x) − y_c(x') (completeness: the "
                      "miss in the titles)",
                      "Simonyan et al. 2014; Smilkov et al. 2017; Sundararajan et al. 2017",
                      {"SmoothGrad": f"{cfg['n']} copies, noise {cfg['noise']:.0%} of the "
                                     f"input range",
                       "IG": f"baseline black, up to {cfg['steps']} path points (adaptive)"
                             + ("" if info.kind == "small" else ", on the first photo")},
                      info)
    figs = [figure(info) for info in _models(ctx)]
    photo = _try(lambda: ctx.photo)
    if photo is not None:
        def segment():
            from ...plot.attribution import segmentation_figure
            from ...techniques.grabcut import iou, saliency_segmentation
            name, x, pix = ctx.photos()[0]
            key = (photo.name, name)
            if key not in maps:
                row(photo, x[0], pix, ctx.target(photo, x), name, with_ig=False)
            m = maps[key]
            s = np.abs(m["smoothgrad"]).max(axis=0)
            # the graph cut on every second pixel, the mask drawn at full size: at full size
            # the cut is bistable (on the cup, GMM seed 0 takes the saucer too, 67% of the
            # picture, seed 1 the cup alone); at half size seeds 0-2 all give the cup
            H, W = s.shape
            half = saliency_segmentation(pix[::2, ::2], s[::2, ::2], seed=ctx.seed)
            mask = half.repeat(2, axis=0).repeat(2, axis=1)[:H, :W]
            box = _photo_box(name, H)
            xy_box, title = None, None
            if box is not None:
                top, left, bottom, right = box
                xy_box = (left, top, right, bottom)
                title = (f"{_name(photo, ctx.target(photo, x))}: the mask's IoU\nwith the "
                         f"{_box_what(name)}'s box (red) {iou(mask, box=xy_box):.2f}")
            return segmentation_figure(pix, s, mask, box=xy_box, title=title,
                                       map_title=f"SmoothGrad²: mean (∂y/∂x)² over "
                                                 f"{m['n']} copies")
        figs.append(Figure(f"{photo.name}-segmentation", segment,
                           "weakly supervised segmentation from SmoothGrad saliency (graph cut)",
                           "seeds: fg = saliency > 95th percentile; bg = saliency < 5th "
                           "percentile and the top, left and right border strip; colour GMMs; "
                           "min-cut",
                           "Simonyan et al. 2014 §6; Rother et al. 2004 (GrabCut); "
                           "Smilkov et al. 2017",
                           {"fg_quantile": 0.95, "bg_quantile": 0.05,
                            "border": "1/56 of the short side, top, left and right (GrabCut's "
                            "prior: the frame's border is background; not the bottom, which a "
                            "portrait's shoulders cross)",
                            "resolution": "the cut on every second pixel (stable across "
                            "GMM seeds), the mask drawn at full size",
                            "map": "the saliency figure's SmoothGrad²: the single gradient of "
                            "this net is speckle, its seeds scatter"}, photo))
    return figs


def _photo_box(name, size):
    """The object's box (top, left, bottom, right) of a shipped sample photo, or None."""
    from ...data.samples import SAMPLE_PHOTOS, photo_box
    if name not in SAMPLE_PHOTOS or SAMPLE_PHOTOS[name].box is None:
        return None
    return photo_box(name, size)


def _box_what(name):
    """What a sample photo's box holds, from its description: "an espresso cup on a saucer"
    -> "espresso cup"."""
    from ...data.samples import SAMPLE_PHOTOS
    what = SAMPLE_PHOTOS[name].what.split(" on ")[0]
    return what.split(" ", 1)[1] if what.startswith(("a ", "an ", "the ")) else what


def _box_img(pix, title, box):
    """A cell: the image, with the object's box in red when it is known."""
    from ...plot.core import plt

    def draw(ax):
        _img(pix, title)(ax)
        if box is not None:
            top, left, bottom, right = box
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                       fill=False, edgecolor="red", linewidth=1))
    return draw
