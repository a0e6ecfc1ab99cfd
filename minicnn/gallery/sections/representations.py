"""Sections 1–5: filters, activations, top images, neighbours, PCA/t-SNE."""
import numpy as np

from ..figure import Figure, Skip
from ._common import _models, _photo_layers, _try, section


# ============================================================ representations
@section("filters", "1 · Filters")
def filters(ctx):
    from ...plot.representations import plot_filters
    from ...techniques.filters import first_conv_layer
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
        if cifar is not None and not ctx.model_name and cifar.trained:
            figs.append(Figure(
                "cifar_net-first", lambda: cifar_filter_probes(cifar.model),
                "what cifar_net's 3×3 colour filters measure, read from their answers to two "
                "charts. A 3×3 kernel holds nine numbers per channel: the finest stripe it could "
                "draw is one pixel light, one dark — too few taps for the several-cycle Gabor "
                "stripes of AlexNet's 11×11 filters, so as pictures they look like noise. Their "
                "answers do not: each lights one sector of the colour wheel (a colour "
                "detector) and many light one side of the disk's rim (an edge whose brightness "
                "rises along the arrow). Stripes and textures appear one layer up, where 3×3 "
                "filters of these answers cover 5×5 pixels (VGG's design; the net is trained: "
                "its test accuracy is in the model line)",
                "response_f(I) = max(0, W_f * I + b_f) on a light disk (every edge orientation) "
                "and a colour wheel (every hue); rim angle and preferred hue = response-weighted "
                "circular means",
                "Krizhevsky, Sutskever & Hinton 2012, Fig. 3; Simonyan & Zisserman 2015; "
                "Hubel & Wiesel 1962 (probing units with edges)",
                {"layer": first_conv_layer(cifar.model), "kernel": "3×3",
                 "order": "by preferred hue", "arrow": "dark → light direction of the edge"},
                cifar))
        elif cifar is not None and not ctx.model_name:
            figs.append(Figure("cifar_net-first", lambda: plot_filters(cifar.model),
                               f"{what} — untrained: random weights show no structure, for "
                               "contrast", formula, paper,
                               {"layer": first_conv_layer(cifar.model)}, cifar))
    return figs


def cifar_filter_probes(model, min_strength=0.5):
    """The cifar_net filter figure: ``plot_filter_probes`` with the counts in its title."""
    from ...plot.representations import plot_filter_probes
    from ...techniques.filters import probe_responses
    probes = probe_responses(model)
    w = model.get_submodule(probes["layer"]).weight.data
    n = len(probes["hue"])
    colour = int((probes["hue_strength"] >= min_strength).sum())
    edge = int((probes["rim_strength"] >= min_strength).sum())
    fig = plot_filter_probes(probes, _rgb_weights(model, w), min_strength)
    fig.suptitle(f"{probes['layer']}: {colour} of {n} filters light one sector of the colour "
                 f"wheel, {edge} of {n} one side of the disk's rim (circular vector strength "
                 f"≥ {min_strength}); maps each scaled to their maximum", fontsize=9)
    fig.tight_layout()
    return fig


def _rgb_weights(model, w):
    from ...backend import to_numpy
    w = np.asarray(to_numpy(w))
    order = getattr(getattr(model, "preprocess", None), "channel_order", "RGB")
    return w[:, ::-1] if order == "BGR" else w


# activation grids: full brightness at this percentile of the layer's positive values
ACTIVATION_PERCENTILE = 98


@section("activations", "2 · Activations")
def activations(ctx):
    from ...plot.representations import plot_activation_grid
    from ...techniques.filters import activation_grids
    figs = []
    for info in _models(ctx):
        layers = _photo_layers(info)[:2] if info.kind == "photo" else ("features.1", "features.8")

        def build(info=info, layer=None):
            if info.kind == "small":
                s = ctx.samples(1)
                x, pix = s.x, s.pixels[0]
            else:
                x, pix = ctx.photos()[0].x, ctx.photos()[0].pixels
            act = activation_grids(info.model, x, [layer])[layer]
            return plot_activation_grid(act[:64], f"{layer} (first 64 channels)"
                                        if len(act) > 64 else layer, cmap="inferno", image=pix,
                                        percentile=ACTIVATION_PERCENTILE)
        for layer in layers:
            figs.append(Figure(f"{info.name}-{layer}", lambda b=build, l=layer, i=info: b(i, l),
                               "activation grid: every channel of one layer for one input",
                               f"a_l(x)[c] for each channel c, one scale for the layer: 0 to the "
                               f"{ACTIVATION_PERCENTILE}th percentile of its positive values",
                               "Yosinski et al. 2015, Understanding neural networks through "
                               "deep visualization", {"layer": layer}, info))
    return figs


@section("top_images", "3 · Top images and receptive fields")
def top_images(ctx):
    from ...plot.core import image_grid
    from ...plot.representations import erf_theory_figure, plot_top_patches
    from ...techniques.deconvnet import deconvnet_projection
    from ...techniques.receptive_field import centre_unit_boxes, effective_receptive_field
    from ...techniques.top_activations import top_activations, top_patches
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
    n, source, _ = ctx.dataset_info(n)
    k = min(k, n)
    params = {"layer": layer, "k": k, "images": f"{n} from {source}"}
    return [Figure(f"{info.name}-grid", grid, "top-k images per channel", formula, paper,
                   params, info)] + \
        [Figure(f"{info.name}-patches-{r}", lambda r=r: patches(r),
                "top patches (receptive field crops) with deconvnet projections", formula, paper,
                {**params, "channel": f"the {r + 1}. strongest"}, info)
         for r in range(ctx.pick(1, 3))] + \
        [Figure(f"{info.name}-erf", lambda: erf_theory_figure(
            effective_receptive_field(info.model, relus, n_samples=ctx.pick(8, 32),
                                      seed=ctx.seed),
            centre_unit_boxes(info.model, relus)),
            "effective receptive field per layer, beside the geometric one",
            "ERF_l = E_x |∂ a_l[centre] / ∂x|; geometric: size_l = size_{l−1} + (k − 1)·jump",
            "Luo et al. 2016, Understanding the effective receptive field",
            {"layers": relus, "random inputs": ctx.pick(8, 32)}, info)]


# the neighbours figure: mirrored queries (left–right), their label agreement measured over
# NEIGHBOUR_QUERIES of them; k neighbours each
NEIGHBOUR_QUERIES, NEIGHBOUR_K = 200, 7


def mirrored_neighbours(model, x, pix, labels, queries=NEIGHBOUR_QUERIES, k=NEIGHBOUR_K):
    """The first ``queries`` images, mirrored left–right, looked up among the others by
    penultimate features and by pixels: (query pixels, {"features": (Q, k), "pixels": (Q, k)}
    indices into the database = images[queries:], {method: label agreement})."""
    from ...techniques.neighbors import extract_features, label_agreement, nearest_neighbors
    pre = model.preprocess
    q_pix = np.ascontiguousarray(pix[:queries, :, ::-1])
    q_x = pre.preprocess(q_pix, dtype=x.dtype)
    db_x, db_y = x[queries:], np.asarray(labels)[queries:]
    found = {"features": nearest_neighbors(extract_features(model, q_x),
                                           extract_features(model, db_x), k)[0],
             "pixels": nearest_neighbors(q_x.reshape(len(q_x), -1),
                                         db_x.reshape(len(db_x), -1), k)[0]}
    found = {m: np.asarray(_np(i)) for m, i in found.items()}
    agree = {m: label_agreement(i, db_y, np.asarray(labels)[:queries]) for m, i in found.items()}
    return q_pix, found, agree


@section("neighbors", "4 · Nearest neighbours")
def neighbors(ctx):
    from ...plot.representations import plot_neighbors
    info = ctx.small
    n, q, k = ctx.pick(1000, 10000), ctx.pick(4, 6), NEIGHBOUR_K
    n, source, installed = ctx.dataset_info(n)
    if not installed:
        raise Skip(f"needs {ctx.dataset_how_to_get or 'a labelled test set'}; only {n} images "
                   f"from {source} are here, too few for neighbours that share a label")

    def build():
        x, pix, y = ctx.dataset(n)
        q_pix, found, agree = mirrored_neighbours(info.model, x, pix, y)
        # the rows drawn: the first query of each of q classes (three trousers say less)
        first = {}
        for i, label in enumerate(y[:NEIGHBOUR_QUERIES]):
            first.setdefault(int(label), i)
        shown = sorted(first.values())[:q]
        rows = {m: i[shown] for m, i in found.items()}
        fig = plot_neighbors(q_pix[shown], pix[NEIGHBOUR_QUERIES:], rows,
                             labels=(y[NEIGHBOUR_QUERIES:], y[shown]))
        fig.suptitle(f"mirrored queries: {k} nearest with the query's label, over "
                     f"{NEIGHBOUR_QUERIES} queries — features {_pct(agree['features'])}, "
                     f"pixels {_pct(agree['pixels'])}", fontsize=9)
        fig.tight_layout()
        return fig, (f"same label as the query: {_pct(agree['features'])} (features) vs "
                     f"{_pct(agree['pixels'])} (pixels) over {NEIGHBOUR_QUERIES} mirrored "
                     "queries; rows: the first query of each class; red frame = other label")
    return [Figure(f"{info.name}-neighbours", build, "nearest neighbours: features vs pixels",
                   "‖φ(q) − φ(x)‖₂ in the penultimate layer vs ‖q − x‖₂ on pixels",
                   "Krizhevsky, Sutskever & Hinton 2012, Fig. 4",
                   {"layer": "penultimate", "k": k, "queries": f"{NEIGHBOUR_QUERIES} test images "
                    "mirrored left–right", "database": f"the other {n - NEIGHBOUR_QUERIES} of "
                    f"{n} images from {source}"}, info)]


def _np(a):
    from ...backend import to_numpy
    return to_numpy(a)


def _pct(v):
    v = float(np.mean(v)) if np.ndim(v) else float(v)
    return f"{100 * v:.0f}%"


@section("embedding", "5 · PCA and t-SNE")
def embedding(ctx):
    from ...plot.representations import plot_embedding, plot_grid_mosaic, plot_thumbnails
    from ...techniques.embedding import grid_assignment, pca
    from ...techniques.neighbors import extract_features
    from ...techniques.tsne import tsne
    info = ctx.small
    n, iters = ctx.pick(500, 2000), ctx.pick(250, 1000)
    n, source, _ = ctx.dataset_info(n)
    perplexity, clipped = tsne_perplexity(n)
    cache = {}

    def feats():
        if "f" not in cache:
            x, pix, y = ctx.dataset(n)
            cache["f"] = (_np(extract_features(info.model, x)), pix, y)
        return cache["f"]

    def embed():
        if "y" not in cache:
            f, _, _ = feats()
            cache["y"] = _np(tsne(f, perplexity=perplexity, n_iter=iters, seed=ctx.seed, progress=False))
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
        from ...plot.representations import thumbnail_canvas
        _, pix, _ = feats()
        # one whole thumbnail per cell, at the size the page shows (90 dpi): no dark blobs
        size = ctx.pick(7.0, 10.0)
        canvas = int(90 * size)
        _, drawn = thumbnail_canvas(embed(), pix, canvas, overlap=False, return_drawn=True)
        return plot_thumbnails(embed(), pix, canvas=canvas, size=size, overlap=False,
                               title=f"t-SNE with the images at their positions: one per "
                                     f"{pix.shape[1]}-pixel cell, {len(drawn)} of {len(pix)} "
                                     "shown")

    def mosaic():
        _, pix, _ = feats()
        side = int(np.sqrt(min(len(pix), 400)))
        rows, cols = grid_assignment(embed()[:side * side], side)
        return plot_grid_mosaic(pix[:side * side], rows, cols, side, size=7.0,
                                title="t-SNE snapped to a grid (linear assignment)")
    tsne_formula = "∂KL/∂y_i = 4 Σ_j (p_ij − q_ij)(1 + ‖y_i − y_j‖²)⁻¹ (y_i − y_j)"
    tsne_paper = "van der Maaten & Hinton 2008"
    p = {"points": f"{n} from {source}", "layer": "penultimate"}
    figs = [Figure(f"{info.name}-pca", pca_fig, "PCA", "X − mean = U S Vᵀ; scores U S",
                   "Pearson 1901; Hotelling 1933", p, info),
            Figure(f"{info.name}-tsne", tsne_fig, "t-SNE", tsne_formula, tsne_paper,
                   {**p, "perplexity": clipped or perplexity, "iterations": iters}, info),
            Figure(f"{info.name}-tsne-images", thumbs, "t-SNE of CNN codes as images",
                   tsne_formula, "Karpathy, t-SNE visualization of CNN codes",
                   {**p, "perplexity": clipped or perplexity}, info)]
    if not ctx.quick:
        figs.append(Figure(f"{info.name}-tsne-grid", mosaic, "t-SNE on a grid",
                           "min Σ_i ‖y_i − cell(i)‖² over one-to-one assignments",
                           "Karpathy, t-SNE visualization of CNN codes", p, info))
    return figs


def tsne_perplexity(n, wanted=30):
    """(perplexity for t-SNE on ``n`` points, caption text when ``wanted`` had to be lowered).

    t-SNE needs perplexity < n − 1 (each point's Gaussian must spread over more neighbours
    than it has); on few points the gallery uses (n − 1) / 3 and says so."""
    if n < 3:
        raise Skip(f"t-SNE needs at least 3 points, the data has {n}")
    if wanted <= (n - 1) / 3:
        return wanted, ""
    value = round((n - 1) / 3, 2)
    return value, f"{value:g} (lowered from {wanted}: t-SNE needs perplexity < points − 1 = {n - 1})"
