"""The gallery's sections, in the order of the lectures: each takes the gallery's context and
returns the figures it wants (``gallery.Figure``: a builder and its caption).

A section imports its technique module inside the function, so a missing module
skips that section only; ``ctx.small`` / ``ctx.photo`` raise ``Skip`` when that model is
not available, which skips the figure (or, at the top of a section, the section).
``ctx.pick(quick, full)`` chooses the sizes and iteration counts of ``--quick``.
"""
import numpy as np

from .gallery import Figure, Skip

SECTIONS = {}                      # name -> (title, function), filled in lecture order below


def section(name, title):
    def register(fn):
        SECTIONS[name] = (title, fn)
        return fn
    return register


def _try(get):
    """The model info from ``get()``, or None when it is skipped (noted by the context)."""
    try:
        return get()
    except Skip:
        return None


def _models(ctx):
    """The available models among the small net and the photo model (at least one, or Skip)."""
    found, reasons = [], []
    for get in (lambda: ctx.small, lambda: ctx.photo):
        try:
            found.append(get())
        except Skip as s:
            reasons.append(str(s))
    if not found:
        raise Skip("no model available: " + "; ".join(reasons))
    return found


def _photo_layers(info):
    """(early, mid, deep) layer names of an architecture, for activations, dreams and styles."""
    table = {"efficientnet_lite0": tuple(f"_blocks.{i}._depthwise_relu" for i in (1, 5, 10)),
             "squeezenet1_1": ("features.1", "features.6", "features.10"),
             "resnet18": ("relu", "layer2", "layer3"), "vgg16": ("features.3", "features.15",
                                                                "features.22"),
             "vgg11": ("features.1", "features.7", "features.14"),
             "alexnet": ("features.1", "features.4", "features.9"),
             "fashion_net": ("features.1", "features.3", "features.8"),
             "cifar_net": ("features.1", "features.6", "features.13")}
    return table.get(info.name, (info.model.default_cam_layer,) * 3)


def _resized(info, pix, side):
    """Pixels resized to side×side and preprocessed: the working image of the costly methods."""
    from PIL import Image
    img = Image.fromarray(np.clip(pix, 0, 255).astype(np.uint8)).resize((side, side),
                                                                        Image.Resampling.BILINEAR)
    return info.preprocess.preprocess(np.asarray(img))


def _grid(rows, titles=None, cell=1.7):
    """A figure from rows of cells; a cell is a function drawing on its axes (or None)."""
    from .plot.core import plt
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell * ncols, cell * len(rows) + 0.2),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            axes[r, c].set_axis_off()
            if c < len(row) and row[c] is not None:
                row[c](axes[r, c])
    if titles:
        for c, t in enumerate(titles):
            axes[0, c].set_title(t, fontsize=8)
    fig.tight_layout()
    return fig


def _img(pix, title=None, **kw):
    from .plot.core import show_image
    return lambda ax: show_image(ax, pix, title, **kw)


def _gray(m, title=None):
    from .plot.core import normalize_map, show_image
    return lambda ax: show_image(ax, normalize_map(m), title, cmap="gray", value_range=(0, 1))


def _signed(g, title=None):
    from .plot.attribution import gradient_image
    from .plot.core import show_image
    return lambda ax: show_image(ax, gradient_image(g), title, value_range=(0, 1))


def _heat(pix, m, title=None):
    from .plot.attribution import heatmap_overlay
    return lambda ax: heatmap_overlay(ax, pix, m, title=title)


def _name(info, k):
    return str(info.labels[k]).split(",")[0] if info.labels else str(k)


def _per_image(ctx, infos, n_small, technique, formula, paper, key, cells, params=None, cols=None):
    """One figure per model: rows = images, columns = ``cells(info, x, pix, target)``."""
    figs = []
    for info in infos:
        def build(info=info):
            if info.kind == "small":
                xs, pixs, labels, _ = ctx.samples(n_small)
            else:
                ph = ctx.photos()
                xs, pixs, labels = [p[1][0] for p in ph], [p[2] for p in ph], [None] * len(ph)
            rows = []
            for x, pix, lab in zip(xs, pixs, labels):
                t = ctx.target(info, x[None], lab)
                rows.append([_img(pix, _name(info, t))] + cells(info, x, pix, t))
            return _grid(rows, cols)
        figs.append(Figure(f"{info.name}-{key}", build, technique, formula, paper, params or {},
                           info))
    return figs


# ============================================================ representations
@section("filters", "1 · Filters")
def filters(ctx):
    from .plot.representations import plot_filters
    from .techniques.filters import first_conv_layer
    what = "first-layer filters"
    formula = "show(W_f) = (W_f − min W_f) / (max W_f − min W_f), each filter on its own"
    paper = "Krizhevsky, Sutskever & Hinton 2012, Fig. 3"
    figs = []
    for info in _models(ctx):
        layer = first_conv_layer(info.model)
        figs.append(Figure(f"{info.name}-first", lambda m=info.model, l=layer: plot_filters(m, l),
                           what, formula, paper, {"layer": layer}, info))
    small = _try(lambda: ctx.small)
    if small is not None and small.name == "fashion_net":
        deep = "features.5"
        figs.append(Figure(f"{small.name}-deep", lambda: plot_filters(small.model, deep, True),
                           "deeper filters (one grey map per input channel: they see feature "
                           "maps, not pixels)", formula, paper, {"layer": deep}, small))
        cifar = _try(ctx.cifar)
        if cifar is not None and not ctx.model_name:
            figs.append(Figure("cifar_net-first", lambda: plot_filters(cifar.model), what + " — "
                               "untrained: random weights show no structure, for contrast",
                               formula, paper, {"layer": first_conv_layer(cifar.model)}, cifar))
    return figs


@section("activations", "2 · Activations")
def activations(ctx):
    from .plot.representations import plot_activation_grid
    from .techniques.filters import activation_grids
    figs = []
    for info in _models(ctx):
        layers = _photo_layers(info)[:2] if info.kind == "photo" else ("features.1", "features.8")

        def build(info=info, layer=None):
            x = ctx.samples(1)[0] if info.kind == "small" else ctx.photos()[0][1]
            act = activation_grids(info.model, x, [layer])[layer]
            return plot_activation_grid(act[:64], f"{layer} (first 64 channels)"
                                        if len(act) > 64 else layer)
        for layer in layers:
            figs.append(Figure(f"{info.name}-{layer}", lambda b=build, l=layer, i=info: b(i, l),
                               "activation grid: every channel of one layer for one input",
                               "a_l(x)[c] for each channel c, scaled 0..max over the layer",
                               "Yosinski et al. 2015, Understanding neural networks through "
                               "deep visualization", {"layer": layer}, info))
    return figs


@section("top_images", "3 · Top images and receptive fields")
def top_images(ctx):
    from .plot.attribution import erf_figure
    from .plot.core import image_grid
    from .plot.representations import plot_top_patches
    from .techniques.deconvnet import deconvnet_projection
    from .techniques.receptive_field import effective_receptive_field
    from .techniques.top_activations import top_activations, top_patches
    info = ctx.small
    n, k, layer, shown = ctx.pick(1000, 10000), 8, info.model.default_cam_layer, ctx.pick(4, 8)
    cache = {}

    def top():
        if "top" not in cache:               # one pass over the data serves every figure
            x, pix, _ = ctx.dataset(n)
            t = top_activations(info.model, x, layer, k=k, batch_size=500)
            cache["top"] = x, pix, t, np.argsort(-t.scores[:, 0], kind="stable")[:shown]
        return cache["top"]

    def grid():
        x, pix, t, rows = top()
        ims = [pix[i] for row in t.indices[rows] for i in row]
        return image_grid(ims, ncols=k, cell=0.8, suptitle=f"{layer}: one row per channel "
                          f"({', '.join(map(str, t.units[rows]))}: the {shown} strongest)")

    def patches(rank):
        x, _, t, rows = top()
        unit = int(t.units[rows[rank]])

        def project(xi, u):
            return deconvnet_projection(info.model, xi, layer, u)
        # the unit's top-k over the whole set are its top-k among those k images
        res = top_patches(info.model, x[t.indices[rows[rank]]], layer, unit, k, project=project)
        return plot_top_patches(res, title=f"{layer} channel {unit}: receptive-field patches and "
                                           "their deconvnet projections")

    relus = list(_photo_layers(info)) if info.name != "fashion_net" else \
        ["features.1", "features.3", "features.6", "features.8"]
    formula = "s_c(x) = max_ij a_c(x)[i, j]; keep the k images with the largest s_c"
    paper = "Zeiler & Fergus 2014; Girshick et al. 2014"
    params = {"layer": layer, "k": k, "images": n}
    return [Figure(f"{info.name}-grid", grid, "top-k images per channel", formula, paper,
                   params, info)] + \
        [Figure(f"{info.name}-patches-{r}", lambda r=r: patches(r),
                "top patches (receptive field crops) with deconvnet projections", formula, paper,
                {**params, "channel": f"the {r + 1}. strongest"}, info)
         for r in range(ctx.pick(1, 3))] + \
        [Figure(f"{info.name}-erf", lambda: erf_figure(effective_receptive_field(
            info.model, relus, n_samples=ctx.pick(8, 32), seed=ctx.seed)),
            "effective receptive field per layer", "ERF_l = E_x |∂ a_l[centre] / ∂x|",
            "Luo et al. 2016, Understanding the effective receptive field", {"layers": relus},
            info)]


@section("neighbors", "4 · Nearest neighbours")
def neighbors(ctx):
    from .plot.representations import plot_neighbors
    from .techniques.neighbors import extract_features, label_agreement, nearest_neighbors
    info = ctx.small
    n, q, k = ctx.pick(1000, 10000), ctx.pick(4, 6), 7

    def build():
        x, pix, y = ctx.dataset(n)
        feats = extract_features(info.model, x)
        i_f, _ = nearest_neighbors(feats[:q], feats, k, exclude_self=True)
        i_p, _ = nearest_neighbors(x[:q].reshape(q, -1), x.reshape(len(x), -1), k,
                                   exclude_self=True)
        i_f, i_p = (np.asarray(_np(i)) for i in (i_f, i_p))
        agree = [label_agreement(i, y, y[:q]) for i in (i_f, i_p)]
        fig = plot_neighbors(pix[:q], pix, {"features": i_f, "pixels": i_p}, labels=(y, y[:q]))
        return fig, (f"same label as the query: {_pct(agree[0])} (features) vs "
                     f"{_pct(agree[1])} (pixels); red frame = other label")
    return [Figure(f"{info.name}-neighbours", build, "nearest neighbours: features vs pixels",
                   "‖φ(q) − φ(x)‖₂ in the penultimate layer vs ‖q − x‖₂ on pixels",
                   "Krizhevsky, Sutskever & Hinton 2012, Fig. 4",
                   {"layer": "penultimate", "k": k, "database": n}, info)]


def _np(a):
    from .backend import to_numpy
    return to_numpy(a)


def _pct(v):
    v = float(np.mean(v)) if np.ndim(v) else float(v)
    return f"{100 * v:.0f}%"


@section("embedding", "5 · PCA and t-SNE")
def embedding(ctx):
    from .plot.representations import plot_embedding, plot_grid_mosaic, plot_thumbnails
    from .techniques.embedding import grid_assignment, pca
    from .techniques.neighbors import extract_features
    from .techniques.tsne import tsne
    info = ctx.small
    n, iters = ctx.pick(500, 2000), ctx.pick(250, 1000)
    cache = {}

    def feats():
        if "f" not in cache:
            x, pix, y = ctx.dataset(n)
            cache["f"] = (_np(extract_features(info.model, x)), pix, y)
        return cache["f"]

    def embed():
        if "y" not in cache:
            f, _, _ = feats()
            cache["y"] = _np(tsne(f, perplexity=30, n_iter=iters, seed=ctx.seed, progress=False))
        return cache["y"]

    def pca_fig():
        f, _, y = feats()
        r = pca(f, 2)
        ratio = _np(r.explained_variance_ratio)
        return plot_embedding(_np(r.scores), y, info.labels, title=f"PCA of {info.name} features "
                              f"(PC1 {100 * ratio[0]:.0f}%, PC2 {100 * ratio[1]:.0f}% of variance)")

    def tsne_fig():
        f, _, y = feats()
        return plot_embedding(embed(), y, info.labels, title=f"t-SNE of {info.name} features")

    def thumbs():
        _, pix, _ = feats()
        return plot_thumbnails(embed(), pix, canvas=ctx.pick(700, 1400), size=8.0,
                               title="t-SNE with the images at their positions")

    def mosaic():
        _, pix, _ = feats()
        side = int(np.sqrt(min(len(pix), 400)))
        rows, cols = grid_assignment(embed()[:side * side], side)
        return plot_grid_mosaic(pix[:side * side], rows, cols, side, size=7.0,
                                title="t-SNE snapped to a grid (linear assignment)")
    tsne_formula = "∂KL/∂y_i = 4 Σ_j (p_ij − q_ij)(1 + ‖y_i − y_j‖²)⁻¹ (y_i − y_j)"
    tsne_paper = "van der Maaten & Hinton 2008"
    p = {"points": n, "layer": "penultimate"}
    figs = [Figure(f"{info.name}-pca", pca_fig, "PCA", "X − mean = U S Vᵀ; scores U S",
                   "Pearson 1901; Hotelling 1933", p, info),
            Figure(f"{info.name}-tsne", tsne_fig, "t-SNE", tsne_formula, tsne_paper,
                   {**p, "perplexity": 30, "iterations": iters}, info),
            Figure(f"{info.name}-tsne-images", thumbs, "t-SNE of CNN codes as images",
                   tsne_formula, "Karpathy, t-SNE visualization of CNN codes", p, info)]
    if not ctx.quick:
        figs.append(Figure(f"{info.name}-tsne-grid", mosaic, "t-SNE on a grid",
                           "min Σ_i ‖y_i − cell(i)‖² over one-to-one assignments",
                           "Karpathy, t-SNE visualization of CNN codes", p, info))
    return figs


# ============================================================ attribution
@section("occlusion", "6 · Occlusion")
def occlusion_section(ctx):
    from .plot.attribution import occlusion_figure
    from .techniques.occlusion import occlusion
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
    from .techniques.gradients import input_gradient, saliency

    def cells(info, x, pix, t):
        w = input_gradient(info.model, x, t)              # saliency(...) is np.abs(w).max(0)
        return [_gray(np.abs(w).max(axis=0), "saliency"), _signed(w, "signed gradient")]
    figs = _per_image(ctx, _models(ctx), ctx.pick(3, 5), "image-specific class saliency",
                      "w = ∂y_c/∂x (score before softmax);  S_ij = max_ch |w_ch,ij|",
                      "Simonyan, Vedaldi & Zisserman 2014", "saliency", cells)
    photo = _try(lambda: ctx.photo)
    if photo is not None:
        def segment():
            from .plot.attribution import segmentation_figure
            from .techniques.grabcut import saliency_segmentation
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
    from .plot.attribution import deconvnet_panel
    from .techniques.deconvnet import deconvnet
    formula = "ReLU backward R_in = R_out·(R_out > 0); max-unpool by the switches; Wᵀ convs"
    paper = "Zeiler & Fergus 2014"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        names = small.model.layer_names()
        layer = "features.6" if "features.6" in names else small.model.default_cam_layer
        n_channels = ctx.pick(2, 4)

        def panel():
            from .techniques.top_activations import top_activations
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
    from .techniques.gradients import guided_backprop
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
    from .plot.attribution import attribution_panel
    from .techniques.gradcam import grad_cam
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
            from .techniques.gradients import guided_backprop
            from .training import predict
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


# ============================================================ image optimization
@section("class_visualization", "11 · Class visualization")
def class_vis_section(ctx):
    from .plot.optimization import class_visualization_grid
    from .techniques.class_vis import class_visualization
    formula = "I* = argmax_I S_c(I) − λ‖I‖²  (+ jitter, blur: Yosinski et al.)"
    paper = "Simonyan, Vedaldi & Zisserman 2014; Yosinski et al. 2015"
    figs = []
    small = _try(lambda: ctx.small)
    if small is not None:
        steps, seeds = ctx.pick(40, 120), ctx.pick([ctx.seed], [ctx.seed, ctx.seed + 1])
        opts = dict(lr=0.1, l2=1e-2, jitter=1, blur_sigma=0.5, blur_every=2, init="random",
                    seed=seeds)

        def grid():
            from .plot.core import image_grid
            from .plot.optimization import to_pixels
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
    from .plot.optimization import inversion_figure
    from .techniques.inversion import invert_layers
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
    from .plot.optimization import deepdream_octaves
    from .techniques.deepdream import deepdream
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
    from .plot.optimization import style_transfer_panel
    from .techniques.style import style_transfer, texture_synthesis
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
                return _resized(info, by.get(7, pix[0]), side), \
                    _resized(info, _stripes(side, grey=True), side)
            return _resized(info, ctx.photos()[0][2], side), \
                _resized(info, _stripes(side), side)

        def transfer(info=info, cl=content_layer, sl=style_layers, steps=steps, beta=beta,
                     images=images):
            c, s = images()
            out, hist = style_transfer(info.model, c, s, cl, sl, steps, style_weight=beta,
                                       tv_weight=1e-3, seed=ctx.seed)
            return style_transfer_panel(c, s, out, hist, info.preprocess)

        def texture(info=info, sl=style_layers, steps=steps, images=images):
            from .plot.optimization import inversion_figure
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


# ============================================================ adversarial, robustness
@section("adversarial", "15 · Adversarial examples")
def adversarial_section(ctx):
    from .plot.adversarial import adversarial_panel, one_pixel_panel, required_eps_plot
    from .techniques.adversarial import fgsm, linear_example, pgd, required_eps
    from .training import predict
    figs = [Figure("linear", lambda: required_eps_plot(required_eps(np.logspace(1, 5.2, 12)
                                                                    .astype(int)),
                                                       linear_example()),
                   "why linear models are easy to fool",
                   "w·(x + ε·sign(w)) = w·x + ε‖w‖₁, so ε = Δ / ‖w‖₁ ~ 1/d",
                   "Goodfellow, Shlens & Szegedy 2015", {"Δ": 5})]

    def titles(info, x, adv):
        out = []
        for p, q in zip(_softmax(predict(info.model, x)), _softmax(predict(info.model, adv))):
            out.append((f"{_name(info, p.argmax())} {p.max():.2f}",
                        f"→ {_name(info, q.argmax())} {q.max():.2f}"))
        return out

    for info in _models(ctx):
        eps = 0.1 if info.kind == "small" else 1 / 255
        steps = ctx.pick(5, 20) if info.kind == "small" else 10

        def attack(info=info, eps=eps, steps=steps, method="fgsm"):
            if info.kind == "small":
                x, _, labels, _ = ctx.samples(ctx.pick(3, 5))
            else:
                x = np.concatenate([p[1] for p in ctx.photos()])
                labels = [None] * len(x)
            y = [ctx.target(info, xi[None], lab) for xi, lab in zip(x, labels)]
            adv = fgsm(info.model, x, y, eps) if method == "fgsm" else \
                pgd(info.model, x, y, eps, steps=steps, seed=ctx.seed)
            return adversarial_panel(x, adv, info.preprocess, titles(info, x, adv))
        figs.append(Figure(f"{info.name}-fgsm", attack, "fast gradient sign method (FGSM)",
                           "x' = x + ε·sign(∇ₓ J(x, y))", "Goodfellow, Shlens & Szegedy 2015",
                           {"eps (pixels, 0–1)": round(eps, 4)}, info))
        if info.kind == "small" or not ctx.quick:
            figs.append(Figure(f"{info.name}-pgd", lambda a=attack: a(method="pgd"),
                               "projected gradient descent (PGD, L∞)",
                               "δ ← clip(δ + α·sign(∇ J(x0 + δ, y)), −ε, ε), random start",
                               "Madry et al. 2018", {"eps": round(eps, 4), "steps": steps}, info))
        if info.kind == "small":
            def one_pixel(info=info):
                from .techniques.one_pixel import one_pixel_attack
                x, _, labels, _ = ctx.samples(ctx.pick(1, 3))
                res = [one_pixel_attack(info.model, xi, ctx.target(info, xi[None], lab),
                                        pixels=ctx.pick(3, 1), maxiter=ctx.pick(6, 40),
                                        popsize=ctx.pick(10, 30), seed=ctx.seed)
                       for xi, lab in zip(x, labels)]
                return one_pixel_panel(res, info.preprocess, info.labels)
            figs.append(Figure(f"{info.name}-one-pixel", one_pixel, "one-pixel attack",
                               "differential evolution over (row, col, value) of the pixel(s)",
                               "Su, Vargas & Sakurai 2019",
                               {"pixels": ctx.pick(3, 1), "generations": ctx.pick(6, 40)}, info))
    return figs


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@section("robustness", "16 · Robustness")
def robustness_section(ctx):
    from .plot.adversarial import corruption_curves, corruption_examples
    from .techniques.corruptions import corruption_accuracy
    info = ctx.small
    from .techniques.corruptions import CORRUPTIONS
    n = ctx.pick(150, 400)
    names = ctx.pick(("gaussian_noise", "motion_blur", "contrast", "jpeg_compression"),
                     CORRUPTIONS)
    paper = "Hendrycks & Dietterich 2019 (ImageNet-C)"

    def examples():
        return corruption_examples(ctx.samples(1)[1][0], seed=ctx.seed)

    def curves():
        x, pix, y = ctx.dataset(n)
        return corruption_curves(corruption_accuracy(info.model, pix, y, names, seed=ctx.seed),
                                 title=f"{info.name}: accuracy vs corruption severity")

    def robust():
        from .plot.core import plt
        from .techniques.adv_training import robustness
        x, _, y = ctx.dataset(ctx.pick(100, 200))
        eps = ctx.pick((0.02, 0.1), (0.02, 0.05, 0.1))
        r = robustness(info.model, x, y, eps_list=eps, steps=ctx.pick(5, 10), seed=ctx.seed)
        fig, ax = plt.subplots(figsize=(4, 3))
        keys = ["clean", *[float(e) for e in eps]]
        ax.bar([str(k) if k == "clean" else f"ε={k:g}" for k in keys], [r[k] for k in keys])
        ax.set_ylim(0, 1)
        ax.set_ylabel("top-1 accuracy")
        ax.set_title(f"{info.name}: accuracy under L∞ PGD", fontsize=9)
        fig.tight_layout()
        return fig
    return [Figure(f"{info.name}-examples", examples, "common corruptions, severities 0–5",
                   "gaussian/shot/impulse noise, defocus/glass/motion/zoom blur, brightness, "
                   "contrast, JPEG", paper, {}, info),
            Figure(f"{info.name}-curves", curves, "accuracy under common corruptions",
                   "top-1 accuracy per corruption and severity", paper,
                   {"images": n, "corruptions": len(names)}, info),
            Figure(f"{info.name}-pgd", robust, "robust accuracy (PGD)",
                   "accuracy on x0 + δ*, δ* = PGD-k within ‖δ‖∞ ≤ ε", "Madry et al. 2018",
                   {"steps": ctx.pick(5, 10), "images": ctx.pick(100, 200)}, info)]


# ============================================================ segmentation
@section("segmentation", "17 · Segmentation")
def segmentation_section(ctx):
    from .plot.segmentation import class_heatmaps_figure, segmentation_figure
    from .segdata import SEG_CLASSES, SegmentationCanvases
    from .techniques.convolutionalize import convolutionalize, score_maps
    info = ctx.small
    if info.name != "fashion_net":
        raise Skip(f"the segmentation demo is built on fashion_net, not {info.name}")
    _, pix, labels, _ = ctx.samples()
    source = (pix, np.asarray([0 if lab is None else lab for lab in labels]))
    canvases = SegmentationCanvases("test", 84, length=8, items=(2, 3), seed=ctx.seed,
                                    source=source)

    def fcn():
        f = convolutionalize(info.model, (28, 28))
        img = canvases.canvas(0)[0]
        probs = score_maps(f, info.preprocess.preprocess(img))[0]
        return class_heatmaps_figure(img, probs, f.stride, f.window, info.labels)
    figs = [Figure(f"{info.name}-fcn", fcn, "convolutionalized classifier: class maps on a "
                   "larger canvas",
                   "Linear W (D, C·h·w) → Conv2d with kernel W.reshape(D, C, h, w)",
                   "Long, Shelhamer & Darrell 2015", {"canvas": "84×84", "window": "28×28"}, info)]

    def trained():
        from .models import segmentation as seg
        from .models.registry import find_shipped
        from .seg_training import predict_masks
        preds, scores = {}, {}
        # the encoder pools three times: these canvases are 64×64 like the training ones
        small = SegmentationCanvases("test", 64, length=8, items=(1, 3), seed=ctx.seed,
                                     source=source)
        images, masks = small.arrays(ctx.pick(3, 4))
        for name in ("segnet", "segnet_transposed", "unet"):
            if find_shipped(name) is not None:
                model = getattr(seg, name)(pretrained=True).to(ctx.backend)
                preds[name] = predict_masks(model, images)
                acc = model.manifest.get("accuracy", {})
                if "value" in acc:
                    scores[name] = f"test mIoU {acc['value']:.2f}"
        if not preds:
            raise Skip("no trained SegNet / U-Net weights (weights/segnet.npz, weights/unet.npz);"
                       " train them with `minicnn train segnet` / `minicnn train unet`")
        return segmentation_figure(images, masks, preds, SEG_CLASSES, scores)
    figs.append(Figure("encoder-decoder", trained, "encoder–decoder segmentation (SegNet: "
                       "max-unpool with the pooling switches; U-Net: skips)",
                       "per-pixel softmax over 11 classes; decoder up-samples ×2 per block",
                       "Badrinarayanan et al. 2017; Ronneberger et al. 2015",
                       {"canvases": "64×64, items from the shipped samples"}))
    return figs
