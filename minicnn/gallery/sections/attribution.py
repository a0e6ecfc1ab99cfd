"""Sections 6–10: occlusion, saliency, deconvnet, guided backprop, Grad-CAM."""
import numpy as np

from ..figure import Figure
from ._common import (_grid, _img, _models, _name, _per_image, _photo_layers, _signed, _try,
                      section)


# ============================================================ attribution
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


def _completeness(info, x, t, ig):
    """'Σ IG = a of y(x) − y(0) = b': how complete the attribution came out."""
    from ...training import predict
    y = predict(info.model, np.stack([x, np.zeros_like(x)]))[:, t]
    return f"ΣIG={ig.sum():.2f} of Δy={y[0] - y[1]:.2f}"


@section("saliency", "7 · Saliency maps, SmoothGrad, integrated gradients")
def saliency_section(ctx):
    from ...techniques.gradients import input_gradient, integrated_gradients, smoothgrad
    smoothed = {}                       # the photo's SmoothGrad map, shared by both figures

    def smooth(info, x, t, n):
        key = (info.name, x.tobytes(), t, n)
        if key not in smoothed:
            smoothed[key] = smoothgrad(info.model, x, t, n_samples=n, batch_size=min(n, 32)
                                       if info.kind == "small" else 8, seed=ctx.seed,
                                       kind="magnitude")
        return smoothed[key]

    def row(info, x, pix, t):
        small = info.kind == "small"
        n, steps = (32, 64) if small else (ctx.pick(8, 16), ctx.pick(8, 32))
        batch = 32 if small else 8
        w = input_gradient(info.model, x, t)              # saliency(...) is np.abs(w).max(0)
        sg = smooth(info, x, t, n)
        ig = integrated_gradients(info.model, x, t, steps=steps, batch_size=batch)
        return [_img(pix, _name(info, t)), _magnitude(w, "saliency |∂y/∂x|"),
                _magnitude(sg, f"SmoothGrad: mean |∂y/∂x|\nover {n} noisy copies"),
                _magnitude(ig, f"integrated gradients ({steps} steps)\n"
                               f"{_completeness(info, x, t, ig)}")]

    def figure(info):
        def build():
            if info.kind == "small":
                xs, pixs, labels, _ = ctx.samples(ctx.pick(3, 5))
            else:
                ph = ctx.photos()
                xs, pixs, labels = [p.x[0] for p in ph], [p.pixels for p in ph], [None] * len(ph)
            return _grid([row(info, x, pix, ctx.target(info, x[None], lab))
                          for x, pix, lab in zip(xs, pixs, labels)], cell=2.6)
        return Figure(f"{info.name}-saliency", build,
                      "saliency beside SmoothGrad and integrated gradients",
                      "saliency S = max_ch |∂y_c/∂x|;  SmoothGrad: mean of |∂y_c/∂x| over "
                      "x + N(0, (0.15·range)²);  IG: (x − 0)·mean of ∂y_c/∂x along 0 → x, "
                      "Σ IG → y_c(x) − y_c(0) as the steps grow (ΣIG vs Δy in the titles)",
                      "Simonyan et al. 2014; Smilkov et al. 2017; Sundararajan et al. 2017",
                      {"noise": "15% of the input range", "baseline": "0 in input space",
                       "completeness": "fashion_net's 64 steps reach 1% (tested); on "
                       "EfficientNet-Lite0 the class score jumps within the first ~5% of the "
                       "path from the zero image, so a few dozen steps leave the gap the "
                       "title shows"},
                      info)
    figs = [figure(info) for info in _models(ctx)]
    photo = _try(lambda: ctx.photo)
    if photo is not None:
        n = ctx.pick(8, 16)

        def segment():
            from ...plot.attribution import segmentation_figure
            from ...techniques.grabcut import saliency_segmentation
            _, x, pix = ctx.photos()[0]
            s = smooth(photo, x[0], ctx.target(photo, x), n).max(axis=0)
            step = ctx.pick(2, 1)                   # --quick: the graph cut at half resolution
            pix, s = pix[::step, ::step], s[::step, ::step]
            return segmentation_figure(pix, s, saliency_segmentation(pix, s, seed=ctx.seed),
                                       map_title=f"SmoothGrad: mean |∂y/∂x| over {n} copies")
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
                            "map": "SmoothGrad: the single gradient of this net is speckle, "
                            "its seeds scatter"}, photo))
    return figs


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
            return deconvnet_panel(small.model, subset, layer, best.units[rows], k=9)
        figs.append(Figure(f"{small.name}-panel", panel, "deconvnet projections of the top-9 "
                           "activations per channel (Zeiler & Fergus Fig. 2)", formula, paper,
                           {"layer": layer, "channels": f"the {n_channels} strongest"}, small))

    def by_class(info, x, pix, t):
        d = deconvnet(info.model, x, t)
        if info.kind != "small":
            noise = np.random.default_rng(ctx.seed).uniform(0, 255, pix.shape)
            return [_signed(d, f"deconvnet\nr(|d|, edges) = {edge_correlation(d, pix):.2f}"),
                    _img(noise, f"noise: r(|d|, its edges)\n= {edge_correlation(d, noise):.2f}")]
        others = [o for o in ctx.samples(ctx.pick(2, 4)).pixels if not np.array_equal(o, pix)]
        cells = [_signed(d, f"deconvnet\nr(|d|, edges) = {edge_correlation(d, pix):.2f}")]
        if others:
            cells.append(_img(others[0], "another image: r(|d|, its\nedges) = "
                                         f"{edge_correlation(d, others[0]):.2f}"))
        return cells
    for info in _models(ctx):
        if info.kind == "small" or has_switches(info.model):
            figs += _per_image(ctx, [info], n_small=ctx.pick(2, 4),
                               technique="deconvnet (ReLU rule) for a class: |projection| "
                               "correlates with the image's own edges, not with another image's",
                               formula=formula, paper=paper, key="class", cells=by_class)
        else:
            figs.append(Figure(f"{info.name}-class", lambda info=info: no_switches(ctx, info),
                               f"why the deconvnet is not shown for {info.name}", formula, paper,
                               {"reason": "no max-pool layer: nothing of the image reaches the "
                                          "deconvnet's down-pass"}, info))
    return figs


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
        unit_layer = _photo_layers(info)[1]
        cells = [_signed(guided_backprop(info.model, x, t), "class")]
        if info.kind == "small" or not ctx.quick:
            cells.append(_signed(guided_backprop(info.model, x, layer=unit_layer, unit=0),
                                 f"{unit_layer} ch 0"))
        return cells
    return _per_image(ctx, _models(ctx), n_small=ctx.pick(3, 5),
                      technique="guided backpropagation (class, and one channel of a hidden "
                      "layer)", formula=formula, paper=paper, key="guided", cells=cells)


def _cam(pix, m, title):
    """A cell: the Grad-CAM map over the image, scaled to its 99th percentile, colour bar."""
    from ...plot.attribution import heatmap_overlay
    return lambda ax: heatmap_overlay(ax, pix, m, title=title, colorbar="L / p99")


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
            from ...techniques.gradients import guided_backprop
            rows = []
            for name, x, pix in ctx.photos():
                score = "logit"
                (a, b), cams, r = most_different_classes(photo.model, x[0], k=5)
                if r > 0.5:                         # the logits' maps are alike: SqueezeNet
                    score = "probability"
                    (a, b), cams, r = most_different_classes(photo.model, x[0], k=5,
                                                             score=score)
                row = [_img(pix, "image")]
                row += [_cam(pix, cams[i], f"Grad-CAM: {_name(photo, t)}")
                        for i, t in enumerate((a, b))]
                for c, t in list(zip(cams, (a, b)))[:ctx.pick(1, 2)]:
                    # = guided_grad_cam(model, x, t), reusing the map computed above
                    row.append(_signed(guided_backprop(photo.model, x[0], t) * c[None],
                                       f"guided Grad-CAM: {_name(photo, t)}"))
                plural = {"logit": "logits", "probability": "probabilities"}[score]
                row[0] = _img(pix, f"{name}\nmaps of the {plural}: r = {r:.2f}")
                rows.append(row)
            return _grid(rows, cell=2.6)
        figs.append(Figure(f"{photo.name}-classes", two_classes, "Grad-CAM is class-"
                           "discriminative: the top class beside the one of the top 5 whose map "
                           "differs most from it (r: the two maps' correlation), and guided "
                           "Grad-CAM", formula, paper,
                           {"layer": photo.model.default_cam_layer,
                            "second class": "of the top 5, the least correlated map",
                            "score": "the logit y_c, or the softmax probability p_c where "
                                     "the logits' maps correlate above 0.5 (SqueezeNet: p_c is "
                                     "the logit minus what all classes share)"},
                           photo))
    if not figs:
        _models(ctx)                                   # raises Skip with the reasons
    return figs
