"""Sections 11–14: class visualization, inversion, DeepDream, style transfer."""
import time

import numpy as np

from ..figure import Figure, Skip
from ._common import _models, _name, _photo_layers, _resized, _try, section

# The settings of the small net's figures, (quick, full) where they differ; the tests of
# the techniques measure what these figures show (p of each class, code error, ...).
# Fashion-MNIST garments are light on black: the class visualization's L2 term pulls toward
# black (not the mean grey), TV joins neighbouring pixels into shapes, plain SGD steps.
SMALL_CLASS_VIS = dict(lr=0.02, optimizer="sgd", l2=0.3, tv=1.0, background="black",
                       jitter=2, init="random")
SMALL_CLASS_VIS_STEPS = (100, 300)
# The ImageNet model's class visualizations at 224 px: four octaves (82 → 224 px) shown to
# the net at their own size, so the coarse ones are cheap; each step filtered as in Lucid's
# Fourier and decorrelated-colour parameterizations (1/f², colour C Cᵀ) — without them the
# images were a speckle of every colour; jitter and a light blur. The 1/f² filter (1/f gave
# a swirl of fine curls over every image) makes objects a few blobs large; a weak L2 (1e-4,
# no decay: with 1e-3 and decay 0.01 the images were pale grey) lets them take colour.
# The classes were chosen among 20 rendered with these settings as the ones a person names
# at a glance (p 0.99–1.00 each): the daisy's yellow heart and white petals, the
# monarch's orange wing with black veins, the ladybug's red spotted shell, the starfish's
# five arms, the fly agaric's red cap with white spots, the tarantula's radiating legs.
# Left out: strawberry (p 0.45 here), lemon, volcano, broccoli, goldfinch, zebra, banana,
# orange, jellyfish, spider web (right p, but hard to recognise), flamingo and pineapple.
# The full-size octave takes 24 steps: the path of the ascent depends on the BLAS kernel's
# summation order (the pictures differ from one kernel to another, the classes still show),
# and with 16 the monarch ended at p = 0.80 on OpenBLAS's Prescott kernel (with 6, a class
# ended at p = 0.003 with two threads). With 24, p >= 0.99 for all six on the default kernel
# with 1 and 2 threads and on the Prescott kernel.
PHOTO_CLASSES = (985, 323, 301, 327, 992, 76)
PHOTO_CLASS_VIS = dict(octaves=4, octave_steps=(30, 20, 10, 24), upsample_octaves=False,
                       spectrum_power=2.0, decorrelate_colours=True, lr=0.05, l2=1e-4,
                       jitter=8, blur_sigma=0.5, blur_every=4, init="random",
                       relu_rule="redirected")
# features.8 needs 300 L-BFGS steps: at 100 its code error is still ~38%
SMALL_INVERSION_STEPS = (500, 500)
# the last conv layer and 4-pixel steps: at features.6 with 1.5-pixel steps the dream moved
# the pixels by ~6 grey levels on average, too little to see
SMALL_DREAM = dict(layer="features.8", step_size=4.0, octaves=4, jitter=4)
SMALL_DREAM_STEPS, SMALL_DREAM_SIDE = (10, 20), 84
# DeepDream on the photo model: (side, steps per octave) quick and full. EfficientNet-Lite0's
# ReLU6 outputs saturate at 6 (dreaming _blocks.5._depthwise_relu raised ½‖a‖² only ×1.6);
# a block's output (its projection, unclipped) can grow. _blocks.5 (stride 16, 80 channels)
# painted wavy stripes over the cup; _blocks.11 (stride 32, the first 192-channel block)
# paints eyes, fur and a dog-like face into it, the cup's outline still there. Four octaves
# of 1.4 (the large shapes come from the smallest, 81 px at full size). Measured on the cup
# (seed 0): ×3.9 and 24 grey levels at 224 px, ×4.0 and 30 at 128 px with 30 steps (20 steps
# of 4 pixels, jitter 8: ×3.0). With jitter 8 the full dream painted fur balls but no face
# (seeds 0, 1, 2), with 4 a face in the cup (0, 2); 4-pixel steps dissolved the cup at 128 px.
# _blocks.9 shows eyes too, but its ½‖a‖² grew only ×2.3 to ×2.7; _blocks.12 to 14 paint
# fur-like texture without faces.
PHOTO_DREAM = dict(layer="_blocks.11", step_size=3.0, octaves=4, octave_scale=1.4, jitter=4)
PHOTO_DREAM_SIZES = ((128, 30), (224, 20))
# style transfer on the ImageNet model: (side, L-BFGS steps) quick and full, and the texture
PHOTO_STYLE = ((128, 35), (160, 40))     # 15 steps at 128 px: Gram loss only ÷5
# the style: scikit-image's brick wall, its central half (so a brick stays several pixels
# tall at the working size); the texture statistics are compared at a layer not optimised
STYLE_TEXTURE, STYLE_CROP, STYLE_HELD_OUT = "brick", 0.5, "_blocks.3._depthwise_relu"
# the texture: three octaves (71, 107, 160 px) of 40 L-BFGS steps, TV 10. Measured Gram loss
# ÷27 from white noise (20 steps with octaves 40, 80, 160 px and TV 1: ÷11; 40 steps there:
# ÷25, the bricks less regular); TV 1 left purple and green speckle (÷30), 30 blurred the
# mortar lines (÷19), 1e-2 a rainbow speckle
PHOTO_TEXTURE = dict(steps=40, octaves=3, octave_scale=1.5, tv_weight=10.0)


# ============================================================ image optimization
@section("class_visualization", "11 · Class visualization")
def class_vis_section(ctx):
    from ...techniques.class_vis import class_visualization
    formula = "I* = argmax_I S_c(I) − λ‖I‖²  (+ jitter, blur: Yosinski et al.)"
    paper = "Simonyan, Vedaldi & Zisserman 2014; Yosinski et al. 2015"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        steps = ctx.pick(*SMALL_CLASS_VIS_STEPS)
        opts = dict(SMALL_CLASS_VIS, seed=ctx.seed)

        def grid(steps=steps, opts=opts):       # bound now: the photo branch reuses the names
            from ...plot.optimization import class_visualization_panel
            from ...training import predict
            images, probs = [], []
            for k in range(len(small.labels)):
                image = class_visualization(small.model, k, steps, **opts)[0]
                images.append(image)
                probs.append(_softmax(predict(small.model, image))[0, k])
            return class_visualization_panel(
                images, small.labels, probs, small.preprocess,
                suptitle="argmax_I S_c(I) − λ‖I − black‖² − μ TV(I), one per class; "
                         "p = the net's softmax for that class on the image")
        figs.append(Figure(f"{small.name}-classes", grid, "class visualization by gradient ascent",
                           "I* = argmax_I S_c(I) − λ‖I − black‖² − μ TV(I)  (+ jitter)", paper,
                           {"steps": steps, **opts}, small))
    photo = _try(lambda: ctx.photo)
    if photo is not None and ctx.quick:
        ctx.full_only("class visualization")
    elif photo is not None:
        side, classes, opts = 224, PHOTO_CLASSES, dict(PHOTO_CLASS_VIS, seed=ctx.seed)

        def photo_grid(opts=opts):
            from ...plot.optimization import class_visualization_panel
            from ...training import predict
            start = time.perf_counter()
            ims = [class_visualization(photo.model, k, shape=(3, side, side), **opts)[0]
                   for k in classes]
            probs = [_softmax(predict(photo.model, im))[0, k] for im, k in zip(ims, classes)]
            return class_visualization_panel(
                ims, [_name(photo, k) for k in classes], probs, photo.preprocess,
                ncols=3, cell=3.2, suptitle="argmax_I S_c(I) − λ‖I‖², 4 octaves with jitter, "
                "blur, 1/f² and decorrelated-colour steps; p = the net's softmax "
                f"({time.perf_counter() - start:.0f} s for the six)")
        figs.append(Figure(f"{photo.name}-classes", photo_grid, "class visualization by gradient "
                           "ascent", formula + "; steps filtered by 1/f² and colour (Olah et "
                           "al. 2017)", paper + "; Olah, Mordvintsev & Schubert 2017",
                           {"size": side, "classes": list(classes), **opts}, photo))
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
            layers = ctx.pick(["features.1", "features.8"],        # --quick: 500 steps each
                              ["features.1", "features.4", "features.8", "classifier.1"])
            steps = ctx.pick(*SMALL_INVERSION_STEPS)
        else:
            layers, steps = list(_photo_layers(info)[:2]), 40

        def build(info=info, layers=layers, steps=steps):
            if info.kind == "small":
                x = ctx.samples(1).x
            else:
                x = _resized(info, ctx.photos()[0].pixels, 112)
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
        if info.kind == "small":
            options, (side, steps) = SMALL_DREAM, (SMALL_DREAM_SIDE, ctx.pick(*SMALL_DREAM_STEPS))
            why = "the last conv layer"
        else:
            options, (side, steps) = PHOTO_DREAM, ctx.pick(*PHOTO_DREAM_SIZES)
            why = "a deep layer, object parts appear"
        options = dict(options)
        layer = options.pop("layer")

        def build(info=info, layer=layer, side=side, steps=steps, options=options, why=why):
            from ...techniques.deepdream import layer_energy
            pix = ctx.samples(1).pixels[0] if info.kind == "small" else ctx.photos()[0].pixels
            x = _resized(info, pix, side)
            dream, hist = deepdream(info.model, x, layer, steps, seed=ctx.seed, **options)
            fig = deepdream_octaves(x, hist, info.preprocess,
                                    cell=2.0 if info.kind == "small" else 3.0)
            gain = layer_energy(info.model, dream, layer) / layer_energy(info.model, x, layer)
            moved = np.abs(info.preprocess.deprocess(dream[0]) -
                           info.preprocess.deprocess(x[0])).mean()
            fig.suptitle(f"DeepDream at {layer} ({why}): ½‖a‖² ×{gain:.1f} over the input's, "
                         f"pixels moved by {moved:.0f} grey levels on average", fontsize=10)
            return fig
        figs.append(Figure(f"{info.name}-dream", build, "DeepDream with octaves",
                           "I ← I + η · ∇_I ½‖a_l(I)‖² / mean|∇|, coarse to fine",
                           "Mordvintsev, Olah & Tyka 2015, Inceptionism",
                           {"layer": layer, "size": side, "steps/octave": steps,
                            "octaves": options["octaves"],
                            "octave scale": options.get("octave_scale", 1.4),
                            "step (pixels)": options["step_size"]}, info))
    return figs


@section("style_transfer", "14 · Style transfer and texture synthesis")
def style_section(ctx):
    """Only on the ImageNet model: Gram-matrix style needs many texture features (colours,
    edges and stripes at several scales). fashion_net's 16 and 32 filters, learnt on grey
    28×28 garments, have none: its "transfer" was the content image, blockier, without a
    trace of the style."""
    from ...plot.optimization import style_transfer_panel
    from ...techniques.style import style_transfer, texture_synthesis
    formula = "L = α·mean(F_c(I) − F_c(C))² + β Σ_l w_l ‖G_l(I) − G_l(S)‖²,  G = F Fᵀ / (C·H·W)"
    paper = "Gatys, Ecker & Bethge 2016 (style), 2015 (texture)"
    info = _try(lambda: ctx.photo)
    if info is None:
        raise Skip("style transfer is shown with the ImageNet model only (the small nets have "
                   "too few texture features for a visible style), and none is available")
    side, steps = ctx.pick(*PHOTO_STYLE)
    content_layer, style_layers, beta = style_setup(info)

    def images():
        photos = ctx.photos()
        content = next((p for p in photos if p.name == "chelsea"), photos[0])
        ctx.sample_photo(STYLE_TEXTURE)                  # its credit on the page, or Skip
        return _resized(info, content.pixels, side), \
            _resized(info, texture_crop(STYLE_TEXTURE, STYLE_CROP), side)

    def transfer():
        from ...techniques.style import style_distance
        from ...techniques.inversion import code
        c, s = images()
        out, hist = style_transfer(info.model, c, s, content_layer, style_layers, steps,
                                   style_weight=beta, tv_weight=1e-3, seed=ctx.seed)
        fig = style_transfer_panel(c, s, out, hist, info.preprocess)
        to_style, to_content = (style_distance(info.model, out, ref, [STYLE_HELD_OUT])
                                for ref in (s, c))
        layout = np.corrcoef(code(info.model, out, content_layer).ravel(),
                             code(info.model, c, content_layer).ravel())[0, 1]
        fig.suptitle(f"style loss ÷{hist['style'][0] / hist['style'][-1]:.0f} in {steps} L-BFGS "
                     f"steps · at {STYLE_HELD_OUT} (not optimised) the result's Gram matrix is "
                     f"{to_content / to_style:.1f}× nearer the style's than the content's · "
                     f"layout kept: content features correlate r = {layout:.2f}", fontsize=8)
        fig.tight_layout()
        return fig

    def texture():
        from ...plot.optimization import inversion_figure
        from ...techniques.style import style_distance
        _, s = images()
        start = time.perf_counter()
        out, _ = texture_synthesis(info.model, s, style_layers, seed=ctx.seed, **PHOTO_TEXTURE)
        seconds = time.perf_counter() - start
        noise = info.preprocess.preprocess(
            np.random.default_rng(ctx.seed).uniform(0, 255, (side, side, 3)))
        ratio = style_distance(info.model, noise, s, style_layers) / \
            style_distance(info.model, out, s, style_layers)
        return inversion_figure(
            s, {"synthesized texture": out}, info.preprocess, cell=2.6, first="style",
            suptitle=f"texture synthesis: the Gram statistics of the style, not its layout\n"
                     f"(style loss ÷{ratio:.0f} from white noise; {PHOTO_TEXTURE['octaves']} "
                     f"octaves × {PHOTO_TEXTURE['steps']} L-BFGS steps, {seconds:.0f} s)")
    params = {"size": side, "L-BFGS steps": steps, "content": content_layer,
              "style": style_layers, "beta": beta,
              "style image": f"{STYLE_TEXTURE} (scikit-image), its central {STYLE_CROP:.0%}",
              "why this model": "fashion_net's grey 28×28 filters carry no texture to transfer"}
    return [Figure(f"{info.name}-transfer", transfer, "neural style transfer", formula, paper,
                   params, info),
            Figure(f"{info.name}-texture", texture, "texture synthesis (style term only, from "
                   "noise)", "min_I Σ_l w_l ‖G_l(I) − G_l(S)‖²", paper, params, info)]


def style_setup(info):
    """(content layer, style layers, β) of the photo model's style transfer."""
    early, mid, _ = _photo_layers(info)
    style_layers = [early, mid]
    if "_stem_relu" in info.model.layer_names():
        style_layers.insert(0, "_stem_relu")
    # β/α depends on the activation scale: 30 suits EfficientNet-Lite0, 1e-2 SqueezeNet
    return mid, style_layers, 30.0 if info.name == "efficientnet_lite0" else 1e-2


def texture_crop(name, fraction):
    """The central ``fraction`` of a sample texture photo (full resolution, uint8 RGB)."""
    from ...data.samples import sample_photo
    pix = sample_photo(name)
    h, w = pix.shape[:2]
    ch, cw = round(h * fraction), round(w * fraction)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(pix[top:top + ch, left:left + cw])


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
