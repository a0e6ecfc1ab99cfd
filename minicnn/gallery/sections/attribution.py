"""Sections 8–10: deconvnet, guided backprop, Grad-CAM — what the network sees, drawn back
into the image."""
import numpy as np

from ..figure import Figure
from ._common import (_gray, _grid, _img, _models, _name, _per_image, _photo_layers, _signed,
                      _try, section)


# ============================================================ attribution
@section("deconvnet", "8 · Deconvnet")
def deconvnet_section(ctx):
    from ...plot.attribution import deconvnet_panel
    from ...techniques.deconvnet import deconvnet, edge_correlation, has_switches
    formula = "ReLU backward R_in = R_out·(R_out > 0); max-unpool by the switches; Wᵀ convs"
    paper = "Zeiler & Fergus 2014"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        names = small.model.layer_names()
        layer = "features.6" if "features.6" in names else small.model.default_cam_layer
        n_channels = ctx.pick(2, 4)

        def panel():
            from ...techniques.top_activations import top_activations
            x, _, _ = ctx.dataset(ctx.pick(1000, 5000))
            best = top_activations(small.model, x, layer, k=9, batch_size=500)
            rows = np.argsort(-best.scores[:, 0], kind="stable")[:n_channels]
            # each channel's top 9 are its top 9 within the union: one pass over the data
            subset = x[np.unique(best.indices[rows])]
            return deconvnet_panel(small.model, subset, layer, best.units[rows], k=9,
                                   crop=False)
        figs.append(Figure(f"{small.name}-panel", panel, "deconvnet projections of a channel "
                           "in its 9 most activating test images (Zeiler & Fergus Fig. 2, each "
                           "from the channel's whole map and shown over the whole image: one "
                           "unit's projection, cropped to its 10-pixel field, is nearly the "
                           "same picture for all nine)", formula, paper,
                           {"layer": layer, "channels": f"the {n_channels} strongest",
                            "signal": "the channel's activation map, every other channel 0"},
                           small))

    def by_class(info, x, pix, t):
        d = deconvnet(info.model, x, t)
        noise = np.random.default_rng(ctx.seed).uniform(0, 255, pix.shape)
        return [_signed(d, f"deconvnet\nr(|d|, edges) = {edge_correlation(d, pix):.2f}"),
                _img(noise, f"noise: r(|d|, its edges)\n= {edge_correlation(d, noise):.2f}")]
    for info in _models(ctx):
        if info.kind == "small":
            figs.append(Figure(f"{info.name}-class", lambda info=info: strongest_figure(ctx, info),
                               "deconvnet projection of a middle layer's strongest activations: "
                               "it draws the image's own contours", formula, paper,
                               {"layer": DECONV_LAYER, "signal": "the top 5% of the layer's "
                                "activations of that image, all others 0",
                                "r": "Pearson correlation of |projection| with the edge "
                                     "strength of the image, or of another test image"}, info))
        elif has_switches(info.model):
            figs += _per_image(ctx, [info], n_small=ctx.pick(2, 4),
                               technique="deconvnet (ReLU rule) for a class: |projection| "
                               "correlates with the image's own edges, not with noise's",
                               formula=formula, paper=paper, key="class", cells=by_class)
        else:
            figs.append(Figure(f"{info.name}-class", lambda info=info: no_switches(ctx, info),
                               f"why the deconvnet is not shown for {info.name}", formula, paper,
                               {"reason": "no max-pool layer: nothing of the image reaches the "
                                          "deconvnet's down-pass"}, info))
    return figs


DECONV_LAYER = "features.6"       # fashion_net's middle: after one max-pool, before the last


def strongest_projections(info, x, layer=DECONV_LAYER, fraction=0.05):
    """Deconvnet projections (N, C, H, W) of each image's strongest activations of ``layer``."""
    from ...techniques.deconvnet import deconvnet, strongest_activations
    return deconvnet(info.model, x, layer=layer,
                     signal=strongest_activations(info.model, x, layer, fraction))


def edge_agreement(info, x, pixels, layer=DECONV_LAYER):
    """Over the images x (N ≥ 2): mean r(|projection|, own edges), mean r with the next
    image's edges, and the share of images whose own r is the higher."""
    from ...techniques.deconvnet import edge_correlation
    d = strongest_projections(info, x, layer)
    own = np.array([edge_correlation(d[i], pixels[i]) for i in range(len(d))])
    other = np.array([edge_correlation(d[i], pixels[(i + 1) % len(d)]) for i in range(len(d))])
    return float(own.mean()), float(other.mean()), float((own > other).mean())


def strongest_figure(ctx, info):
    """Image | deconvnet of its strongest middle-layer activations | the image's edges; the
    title's numbers are measured over 100 test images (dropped when fewer are installed)."""
    from ...plot.core import plt
    from ...techniques.deconvnet import edge_strength
    layer = DECONV_LAYER if DECONV_LAYER in info.model.layer_names() \
        else info.model.default_cam_layer
    x, pix, _, _ = ctx.samples(ctx.pick(2, 4))
    d = strongest_projections(info, x, layer)
    rows = [[_img(p, "image"), _signed(di, f"deconvnet of {layer}'s\ntop 5% activations"),
             _gray(edge_strength(p), "the image's edges")] for p, di in zip(pix, d)]
    fig = _grid(rows, cell=2.2)
    n, _, _ = ctx.dataset_info(100)
    if n >= 100:
        tx, tpix, _ = ctx.dataset(100)
        own, other, wins = edge_agreement(info, tx, tpix, layer)
        fig.suptitle(f"over {n} test images: r(|projection|, own edges) = {own:.2f},\n"
                     f"with another image's edges {other:.2f}; own higher for {wins:.0%}",
                     fontsize=8)
        plt.subplots_adjust(top=1 - 1.1 / fig.get_figheight())
    return fig


def no_switches(ctx, info):
    """The photo's deconvnet next to a noise image's: identical, because without max-pool
    switches the down-pass (ReLU rule, transposed convs, eval BatchNorm's scaling) never
    looks at the input."""
    from ...plot.core import plt
    from ...techniques.deconvnet import deconvnet
    _, x, pix = ctx.photos()[0]
    t = ctx.target(info, x)
    noise = np.random.default_rng(ctx.seed).normal(size=x.shape[1:]).astype(x.dtype)
    d_photo, d_noise = (deconvnet(info.model, v, t) for v in (x[0], noise))
    r = np.corrcoef(d_photo.ravel(), d_noise.ravel())[0, 1]
    fig = _grid([[_img(pix, "photo"), _signed(d_photo, f"deconvnet, class {_name(info, t)}"),
                  _signed(noise, "noise input"), _signed(d_noise, "deconvnet of the noise")]],
                cell=2.6)
    fig.suptitle(f"{info.name} has no max-pool switches: the deconvnet image is the same for "
                 f"any input (r = {r:.3f}) — a checkerboard of its strided convolutions",
                 fontsize=9)
    plt.subplots_adjust(top=0.78)
    return fig


@section("guided_backprop", "9 · Guided backpropagation")
def guided_section(ctx):
    from ...techniques.gradients import guided_backprop
    formula = "at every ReLU: R_in = R_out · (x > 0) · (R_out > 0)"
    paper = "Springenberg et al. 2015, Striving for simplicity"

    def cells(info, x, pix, t):
        cells = [_contrast(guided_backprop(info.model, x, t), "class")]
        if info.kind == "small":
            unit_layer = _photo_layers(info)[1]
            c = varying_channel(info, x, unit_layer)
            cells.append(_contrast(guided_backprop(info.model, x, layer=unit_layer, unit=c),
                                   f"{unit_layer}\nits most varying channel, {c}"))
        elif not ctx.quick:
            layer = guided_unit_layer(info)
            unit = top_contributing_unit(info, x, t, layer)
            cells.append(_contrast(guided_backprop(info.model, x, layer=layer, unit=unit),
                                   f"{layer}: channel {unit[0]} at ({unit[1]}, {unit[2]}),"
                                   f"\nthe unit adding most to {_name(info, t)}"))
        return cells

    return _per_image(ctx, _models(ctx), n_small=ctx.pick(3, 5), key="guided", cells=cells,
                      technique="guided backpropagation (class; and a hidden unit: on fashion_net "
                      "the channel that varies most over the image, on a photo the deep unit "
                      "that adds most to the class)", formula=formula, paper=paper,
                      params={"display": "grey = 0, each map scaled to its 98th percentile of |g|",
                              "photo's unit": "of a deep block, the (channel, row, column) "
                                              "whose activation × ∂y_c/∂activation is largest"},
                      photo_cell=3.2)


def guided_unit_layer(info):
    """The deep layer whose units the photo's guided figure explains: EfficientNet's block 12
    output (7×7: a unit sees a part — a cup's bowl, a cat's nose; its ReLU6 layers hold
    saturated units, which pass no gradient), else the architecture's deep layer."""
    return {"efficientnet_lite0": "_blocks.12"}.get(info.name, _photo_layers(info)[2])


def top_contributing_unit(info, x, t, layer):
    """The unit (c, i, j) of ``layer`` with the largest activation × ∂y_t/∂activation for
    image x (C, H, W): to first order, the one that adds most to the class score. (The
    strongest activation is no guide: on the cup it sits on the picture's border.)"""
    from ...backend import to_numpy
    from ...nn import capture
    from ...techniques.common import frozen
    from ...techniques.gradients import backward_from_target, image_batch
    with frozen(info.model, eval_mode=False), capture(info.model, [layer]) as acts:
        xt, _ = image_batch(info.model, x, requires_grad=True)
        backward_from_target(info.model(xt), t)
        a, g = to_numpy(acts[layer].data)[0], to_numpy(acts[layer].grad)[0]
    return tuple(int(k) for k in np.unravel_index((a * g).argmax(), a.shape))


def varying_channel(info, x, layer):
    """The channel of ``layer`` whose activation varies most over image x (C, H, W) (largest
    standard deviation over positions): a feature found in some places of the image. (The
    largest *mean* picks channels that are high everywhere through their BatchNorm shift;
    on EfficientNet their guided maps come out blank.)"""
    from ... import no_grad, tensor
    from ...nn import capture
    with no_grad(), capture(info.model, [layer], stop=True) as acts:
        info.model(tensor(x[None]))
    a = acts[layer].numpy()[0]
    return int(a.reshape(len(a), -1).std(axis=1).argmax())


def _contrast(g, title=None):
    """A cell: a signed map as grey ± colour, scaled to its 98th percentile (contrast: a
    photo's guided map is a thin tracing, at p99 most of it stays near grey)."""
    from ...plot.attribution import gradient_image
    from ...plot.core import show_image
    return lambda ax: show_image(ax, gradient_image(g, percentile=98.0), title,
                                 value_range=(0, 1))


def _cam(pix, m, title):
    """A cell: the Grad-CAM map over the image, scaled to its 99th percentile, colour bar."""
    from ...plot.attribution import heatmap_overlay
    return lambda ax: heatmap_overlay(ax, pix, m, title=title, colorbar="L / p99")


def _probability(c):
    """Target function: the softmax probability p_c of every image (Grad-CAM of p_c)."""
    from ... import ops
    return lambda z: ops.softmax(z, axis=1)[:, c].sum()


def _guided_cam(info, x, t, cam):
    """A cell: guided Grad-CAM = guided backprop of the class ⊙ its (ReLU'd) Grad-CAM map."""
    from ...techniques.gradients import guided_backprop
    return _signed(guided_backprop(info.model, x, t) * cam[None],
                   f"guided Grad-CAM: {_name(info, t)}")


def composite_classes(info, x):
    """{photo name: class} for the two-object composite: of each photo's own ImageNet classes
    (``SAMPLE_PHOTOS[name].imagenet``), the one the model finds most probable."""
    from ...data.samples import SAMPLE_PHOTOS
    from ...training import predict
    p = predict(info.model, x)[0]
    names = [_name(info, k) for k in range(len(info.labels))]
    return {photo: max((names.index(c) for c in SAMPLE_PHOTOS[photo].imagenet if c in names),
                       key=lambda k: p[k])
            for photo in ("chelsea", "coffee")}


def composite_cams(info, x):
    """{photo name: (class, Grad-CAM map (H, W) of its probability)} on the two-object
    composite x (1, 3, H, W)."""
    from ...techniques.gradcam import grad_cam
    return {photo: (c, grad_cam(info.model, x[0], _probability(c)))
            for photo, c in composite_classes(info, x).items()}


def own_half(cam, boxes, photo):
    """The share of a map's mass on the half of the composite where ``photo`` is."""
    from ...techniques.common import mass_in_box
    top, left, bottom, right = boxes[photo]
    H, W = cam.shape
    half = (0, 0, H, W // 2) if right <= W // 2 else (0, W // 2, H, W)
    return mass_in_box(cam, half)


def _composite_row(ctx, info):
    """Image | Grad-CAM of the cat | of the cup | guided Grad-CAM of both, on the composite."""
    comp, boxes = ctx.composite()
    cams = composite_cams(info, comp.x)
    row = [_img(comp.pixels, "a cat and an espresso cup\n(two photos side by side)")]
    for photo, (c, cam) in cams.items():
        row.append(_cam(comp.pixels, cam, f"Grad-CAM: p({_name(info, c)})\n"
                                          f"{own_half(cam, boxes, photo):.0%} on its half"))
    row += [_guided_cam(info, comp.x[0], c, cam) for c, cam in cams.values()]
    return row


@section("grad_cam", "10 · Grad-CAM")
def grad_cam_section(ctx):
    from ...plot.attribution import attribution_panel
    formula = "α_k = mean_ij ∂y_c/∂A^k_ij;  L = ReLU(Σ_k α_k A^k), upsampled (y_c: logit or p_c)"
    paper = "Selvaraju et al. 2017"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        def panel():
            x, _, labels, _ = ctx.samples(ctx.pick(3, 5))
            targets = [ctx.target(small, xi[None], lab) for xi, lab in zip(x, labels)]
            # the occlusion section's patch: 10×10, black on Fashion-MNIST's black background
            fill = "black" if small.name == "fashion_net" else "gray"
            return attribution_panel(small.model, x, targets, small.labels, occlusion_size=10,
                                     occlusion_stride=ctx.pick(3, 2), fill=fill,
                                     batch_size=256)
        figs.append(Figure(f"{small.name}-panel", panel, "all maps side by side: saliency, guided "
                           "backprop, Grad-CAM, guided Grad-CAM, occlusion", formula, paper,
                           {"layer": small.model.default_cam_layer}, small))
    photo = _try(lambda: ctx.photo)
    if photo is not None:
        def two_classes():
            from ...techniques.gradcam import most_different_classes
            rows = [_composite_row(ctx, photo)]
            name, x, pix = ctx.photos()[0]
            (a, b), cams, r = most_different_classes(photo.model, x[0], k=5,
                                                     score="probability")
            row = [_img(pix, f"{name}\nmaps of the probabilities: r = {r:.2f}")]
            row += [_cam(pix, c, f"Grad-CAM: {_name(photo, t)}") for c, t in zip(cams, (a, b))]
            row += [_guided_cam(photo, x[0], t, c) for c, t in zip(cams, (a, b))]
            rows.append(row)
            return _grid(rows, cell=2.6)
        figs.append(Figure(f"{photo.name}-classes", two_classes, "Grad-CAM is class-"
                           "discriminative: on a photo of a cat beside an espresso cup, the "
                           "cat's map lies on the cat and the cup's on the cup (the share of "
                           "each map on its object's half in the titles); below, the top class "
                           "of the cup photo beside the one of its top 5 whose map differs most "
                           "(r: the two maps' correlation); and guided Grad-CAM", formula, paper,
                           {"layer": photo.model.default_cam_layer,
                            "classes": "the most probable of the photo's own ImageNet classes "
                                       "(cat: Egyptian cat, tabby, tiger cat; cup: espresso, cup)",
                            "score": "the softmax probability p_c (the logit minus what all "
                                     "classes share; the cat's logit map also touches the cup)",
                            "second class": "of the top 5, the least correlated map"},
                           photo))
    if not figs:
        _models(ctx)                                   # raises Skip with the reasons
    return figs
