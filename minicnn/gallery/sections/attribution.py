"""Sections 6–10: occlusion, saliency, deconvnet, guided backprop, Grad-CAM."""
import numpy as np

from ..core import Figure
from ._common import (_gray, _grid, _heat, _img, _models, _name, _per_image, _photo_layers,
                      _signed, _try, section)


# ============================================================ attribution
@section("occlusion", "6 · Occlusion")
def occlusion_section(ctx):
    from ...plot.attribution import occlusion_figure
    from ...techniques.occlusion import occlusion
    formula = "p(c | x with a grey patch at (r, s)) for every patch position"
    paper = "Zeiler & Fergus 2014, Fig. 7"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        size, stride = ctx.pick(8, 6), ctx.pick(4, 2)
        for i in range(ctx.pick(1, 3)):
            def build(i=i):
                x, pix, labels, _ = ctx.samples(ctx.pick(1, 3))
                t = ctx.target(small, x[i:i + 1], labels[i])
                res = occlusion(small.model, x[i], t, size, stride, "gray", batch_size=64)
                return occlusion_figure(pix[i], res, small.labels)
            figs.append(Figure(f"{small.name}-{i}", build, "occlusion sensitivity", formula,
                               paper, {"patch": size, "stride": stride, "fill": "gray"}, small))
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


@section("saliency", "7 · Saliency maps")
def saliency_section(ctx):
    from ...techniques.gradients import input_gradient, saliency

    def cells(info, x, pix, t):
        w = input_gradient(info.model, x, t)              # saliency(...) is np.abs(w).max(0)
        return [_gray(np.abs(w).max(axis=0), "saliency"), _signed(w, "signed gradient")]
    figs = _per_image(ctx, _models(ctx), ctx.pick(3, 5), "image-specific class saliency",
                      "w = ∂y_c/∂x (score before softmax);  S_ij = max_ch |w_ch,ij|",
                      "Simonyan, Vedaldi & Zisserman 2014", "saliency", cells)
    photo = _try(lambda: ctx.photo)
    if photo is not None:
        def segment():
            from ...plot.attribution import segmentation_figure
            from ...techniques.grabcut import saliency_segmentation
            _, x, pix = ctx.photos()[0]
            s = saliency(photo.model, x[0], ctx.target(photo, x))
            step = ctx.pick(2, 1)                   # --quick: the graph cut at half resolution
            pix, s = pix[::step, ::step], s[::step, ::step]
            return segmentation_figure(pix, s, saliency_segmentation(pix, s, seed=ctx.seed))
        figs.append(Figure(f"{photo.name}-segmentation", segment,
                           "weakly supervised segmentation from saliency (graph cut)",
                           "seeds: saliency > 95th / < 30th percentile; colour GMMs; min-cut",
                           "Simonyan et al. 2014 §6; Rother et al. 2004 (GrabCut)",
                           {"fg_quantile": 0.95, "bg_quantile": 0.30}, photo))
    return figs


@section("deconvnet", "8 · Deconvnet")
def deconvnet_section(ctx):
    from ...plot.attribution import deconvnet_panel
    from ...techniques.deconvnet import deconvnet
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
            return deconvnet_panel(small.model, subset, layer, best.units[rows], k=9)
        figs.append(Figure(f"{small.name}-panel", panel, "deconvnet projections of the top-9 "
                           "activations per channel (Zeiler & Fergus Fig. 2)", formula, paper,
                           {"layer": layer, "channels": f"the {n_channels} strongest"}, small))
    figs += _per_image(ctx, _models(ctx), ctx.pick(2, 4), "deconvnet (ReLU rule) for a class",
                       formula, paper, "class",
                       lambda info, x, pix, t: [_signed(deconvnet(info.model, x, t), "deconvnet")])
    return figs


@section("guided_backprop", "9 · Guided backpropagation")
def guided_section(ctx):
    from ...techniques.gradients import guided_backprop
    formula = "at every ReLU: R_in = R_out · (x > 0) · (R_out > 0)"
    paper = "Springenberg et al. 2015, Striving for simplicity"

    def cells(info, x, pix, t):
        unit_layer = _photo_layers(info)[1]
        cells = [_signed(guided_backprop(info.model, x, t), "class")]
        if info.kind == "small" or not ctx.quick:
            cells.append(_signed(guided_backprop(info.model, x, layer=unit_layer, unit=0),
                                 f"{unit_layer} ch 0"))
        return cells
    return _per_image(ctx, _models(ctx), ctx.pick(3, 5), "guided backpropagation (class, and "
                      "one channel of a hidden layer)", formula, paper, "guided", cells)


@section("grad_cam", "10 · Grad-CAM")
def grad_cam_section(ctx):
    from ...plot.attribution import attribution_panel
    from ...techniques.gradcam import grad_cam
    formula = "α_k = mean_ij ∂y_c/∂A^k_ij;  L = ReLU(Σ_k α_k A^k), upsampled"
    paper = "Selvaraju et al. 2017"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        def panel():
            x, _, labels, _ = ctx.samples(ctx.pick(3, 5))
            targets = [ctx.target(small, xi[None], lab) for xi, lab in zip(x, labels)]
            size = ctx.pick(7, None)                # None: the panel's default (side / 7)
            return attribution_panel(small.model, x, targets, small.labels,
                                     occlusion_size=size, occlusion_stride=size)
        figs.append(Figure(f"{small.name}-panel", panel, "all maps side by side: saliency, guided "
                           "backprop, Grad-CAM, guided Grad-CAM, occlusion", formula, paper,
                           {"layer": small.model.default_cam_layer}, small))
    photo = _try(lambda: ctx.photo)
    if photo is not None:
        def two_classes():
            from ...techniques.gradients import guided_backprop
            from ...training import predict
            rows = []
            for name, x, pix in ctx.photos():
                top = [int(t) for t in np.argsort(-predict(photo.model, x)[0])[:2]]
                cams = [grad_cam(photo.model, x[0], t) for t in top]
                row = [_img(pix, "image")] + [_heat(pix, c, _name(photo, t))
                                              for c, t in zip(cams, top)]
                for c, t in list(zip(cams, top))[:ctx.pick(1, 2)]:
                    # = guided_grad_cam(model, x, t), reusing the map computed above
                    row.append(_signed(guided_backprop(photo.model, x[0], t) * c[None],
                                       f"guided Grad-CAM: {_name(photo, t)}"))
                rows.append(row)
            return _grid(rows, cell=2.0)
        figs.append(Figure(f"{photo.name}-classes", two_classes, "Grad-CAM for the two top "
                           "classes (class-discriminative) and guided Grad-CAM", formula, paper,
                           {"layer": photo.model.default_cam_layer}, photo))
    if not figs:
        _models(ctx)                                   # raises Skip with the reasons
    return figs
