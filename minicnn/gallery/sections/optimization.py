"""Sections 11–14: class visualization, inversion, DeepDream, style transfer."""
import numpy as np

from ..core import Figure
from ._common import _models, _name, _photo_layers, _resized, _try, section


# ============================================================ image optimization
@section("class_visualization", "11 · Class visualization")
def class_vis_section(ctx):
    from ...plot.optimization import class_visualization_grid
    from ...techniques.class_vis import class_visualization
    formula = "I* = argmax_I S_c(I) − λ‖I‖²  (+ jitter, blur: Yosinski et al.)"
    paper = "Simonyan, Vedaldi & Zisserman 2014; Yosinski et al. 2015"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        steps, seeds = ctx.pick(40, 120), ctx.pick([ctx.seed], [ctx.seed, ctx.seed + 1])
        opts = dict(lr=0.1, l2=1e-2, jitter=1, blur_sigma=0.5, blur_every=2, init="random",
                    seed=seeds)

        def grid():
            from ...plot.core import image_grid
            from ...plot.optimization import to_pixels
            ims, titles = [], []
            for k, name in enumerate(small.labels):
                batch = class_visualization(small.model, k, steps, **opts)[0]
                ims += [to_pixels(im, small.preprocess) for im in batch]
                titles += [name if len(seeds) == 1 else f"{name} ({s})" for s in seeds]
            return image_grid(ims, ncols=5 * len(seeds), titles=titles, mode="percentile",
                              cell=1.5, suptitle="argmax_I S_c(I) − λ‖I‖², one per class")
        figs.append(Figure(f"{small.name}-classes", grid, "class visualization by gradient ascent",
                           formula, paper, {"steps": steps, **opts}, small))
    photo = _try(lambda: ctx.photo)
    if photo is not None and ctx.quick:
        ctx.full_only("class visualization")
    elif photo is not None:
        side, steps, octaves, classes = 128, 25, 2, [130, 340]      # flamingo, zebra
        opts = dict(lr=0.05, l2=1e-3, decay=0.01, jitter=8, blur_sigma=1.0, blur_every=2,
                    octaves=octaves, init="random", relu_rule="redirected", seed=ctx.seed)

        def photo_grid():
            ims = [class_visualization(photo.model, k, steps, shape=(3, side, side), **opts)[0]
                   for k in classes]
            return class_visualization_grid([[im] for im in ims], photo.preprocess,
                                            [_name(photo, k) for k in classes])
        figs.append(Figure(f"{photo.name}-classes", photo_grid, "class visualization by gradient "
                           "ascent", formula, paper, {"size": side, "steps/octave": steps,
                                                      "classes": classes, **opts}, photo))
    if not figs:
        _models(ctx)                                   # raises Skip with the reasons
    return figs


@section("inversion", "12 · Feature inversion")
def inversion_section(ctx):
    from ...plot.optimization import inversion_figure
    from ...techniques.inversion import invert_layers
    formula = "x* = argmin_x ‖φ_l(x) − φ_l(x0)‖² / ‖φ_l(x0)‖² + α TV(x)/n + β ‖x‖²/n"
    paper = "Mahendran & Vedaldi 2015, Understanding deep image representations by inverting them"
    figs = []
    for info in _models(ctx):
        if info.kind == "photo" and ctx.quick:
            ctx.full_only("inversion")
            continue
        if info.kind == "small":
            layers = ctx.pick(["features.1", "features.8", "classifier.1"],
                              ["features.1", "features.4", "features.8", "classifier.1"])
            steps = ctx.pick(20, 100)
        else:
            layers, steps = list(_photo_layers(info)[:2]), 40

        def build(info=info, layers=layers, steps=steps):
            if info.kind == "small":
                x = ctx.samples(1)[0]
            else:
                x = _resized(info, ctx.photos()[0][2], 112)
            recons, errors = invert_layers(info.model, x, layers, steps, seed=ctx.seed)
            return inversion_figure(x, recons, info.preprocess, errors)
        figs.append(Figure(f"{info.name}-layers", build, "reconstructions from deeper and deeper "
                           "codes", formula, paper, {"layers": layers, "L-BFGS steps": steps,
                                                     "alpha": 0.1, "beta": 1e-3}, info))
    return figs


@section("deepdream", "13 · DeepDream")
def deepdream_section(ctx):
    from ...plot.optimization import deepdream_octaves
    from ...techniques.deepdream import deepdream
    figs = []
    for info in _models(ctx):
        layer = _photo_layers(info)[1] if info.kind == "photo" else "features.6"
        side = 84 if info.kind == "small" else ctx.pick(96, 224)
        steps, octaves = ctx.pick(4, 10), ctx.pick(2, 4)
        jitter = 4 if info.kind == "small" else 16

        def build(info=info, layer=layer, side=side, steps=steps, octaves=octaves, jitter=jitter):
            pix = ctx.samples(1)[1][0] if info.kind == "small" else ctx.photos()[0][2]
            x = _resized(info, pix, side)
            dream, hist = deepdream(info.model, x, layer, steps, 1.5, octaves=octaves,
                                    jitter=jitter, seed=ctx.seed)
            return deepdream_octaves(x, hist, info.preprocess)
        figs.append(Figure(f"{info.name}-dream", build, "DeepDream with octaves",
                           "I ← I + η · ∇_I ½‖a_l(I)‖² / mean|∇|, coarse to fine",
                           "Mordvintsev, Olah & Tyka 2015, Inceptionism",
                           {"layer": layer, "size": side, "steps/octave": steps,
                            "octaves": octaves, "step (pixels)": 1.5}, info))
    return figs


@section("style_transfer", "14 · Style transfer and texture synthesis")
def style_section(ctx):
    from ...plot.optimization import style_transfer_panel
    from ...techniques.style import style_transfer, texture_synthesis
    formula = "L = α·mean(F_c(I) − F_c(C))² + β Σ_l w_l ‖G_l(I) − G_l(S)‖²,  G = F Fᵀ / (C·H·W)"
    paper = "Gatys, Ecker & Bethge 2016 (style), 2015 (texture)"
    figs = []
    for info in _models(ctx):
        if info.kind == "photo" and ctx.quick:
            ctx.full_only("style transfer")
            continue
        if info.kind == "small":
            side, steps, beta = 56, ctx.pick(15, 60), 30.0
            content_layer, style_layers = "features.6", ["features.1", "features.3", "features.6"]
        else:
            # β/α depends on the activation scale: 30 suits EfficientNet-Lite0, 1e-2 SqueezeNet
            side, steps, beta = 160, 20, 30.0 if info.name == "efficientnet_lite0" else 1e-2
            early, mid, _ = _photo_layers(info)
            content_layer, style_layers = mid, [early, mid]
            if "_stem_relu" in info.model.layer_names():
                style_layers.insert(0, "_stem_relu")

        def images(info=info, side=side):
            if info.kind == "small":
                _, pix, labels, _ = ctx.samples()
                by = dict(zip(labels, pix))
                grey = info.preprocess.channels == 1
                return _resized(info, by.get(7, pix[0]), side), \
                    _resized(info, _stripes(side, grey=grey), side)
            return _resized(info, ctx.photos()[0][2], side), \
                _resized(info, _stripes(side), side)

        def transfer(info=info, cl=content_layer, sl=style_layers, steps=steps, beta=beta,
                     images=images):
            c, s = images()
            out, hist = style_transfer(info.model, c, s, cl, sl, steps, style_weight=beta,
                                       tv_weight=1e-3, seed=ctx.seed)
            return style_transfer_panel(c, s, out, hist, info.preprocess)

        def texture(info=info, sl=style_layers, steps=steps, images=images):
            from ...plot.optimization import inversion_figure
            _, s = images()
            out, _ = texture_synthesis(info.model, s, sl, steps, seed=ctx.seed)
            fig = inversion_figure(s, {"synthesized texture": out}, info.preprocess)
            fig.suptitle("texture synthesis: Gram statistics of the style, no layout", fontsize=9)
            return fig
        params = {"size": side, "L-BFGS steps": steps, "content": content_layer,
                  "style": style_layers, "beta": beta}
        figs.append(Figure(f"{info.name}-transfer", transfer, "neural style transfer", formula,
                           paper, params, info))
        figs.append(Figure(f"{info.name}-texture", texture, "texture synthesis (style term only, "
                           "from noise)", "min_I Σ_l w_l ‖G_l(I) − G_l(S)‖²", paper, params, info))
    return figs


def _stripes(side, grey=False):
    """A synthetic style image: coloured wavy stripes (made here, no file needed)."""
    i, j = np.mgrid[0:side, 0:side] / side
    phase = 6 * np.pi * (i + 0.15 * np.sin(6 * np.pi * j))
    rgb = np.stack([np.sin(phase), np.sin(phase + 2.1), np.sin(phase + 4.2)], -1)
    img = (127.5 + 127.5 * rgb).astype(np.uint8)
    return img[..., 0] if grey else img
