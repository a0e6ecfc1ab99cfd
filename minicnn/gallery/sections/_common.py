"""What every gallery section shares: the registry, model lookup and small plotting helpers."""
import numpy as np

from ..figure import Figure, Skip

SECTIONS = {}       # name -> (title, function), filled in lecture order by the part modules


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
    from ...plot.core import plt
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
    from ...plot.core import show_image
    return lambda ax: show_image(ax, pix, title, **kw)


def _gray(m, title=None):
    from ...plot.core import normalize_map, show_image
    return lambda ax: show_image(ax, normalize_map(m), title, cmap="gray", value_range=(0, 1))


def _signed(g, title=None):
    from ...plot.attribution import gradient_image
    from ...plot.core import show_image
    return lambda ax: show_image(ax, gradient_image(g), title, value_range=(0, 1))


def _heat(pix, m, title=None):
    from ...plot.attribution import heatmap_overlay
    return lambda ax: heatmap_overlay(ax, pix, m, title=title)


def _name(info, k):
    return str(info.labels[k]).split(",")[0] if info.labels else str(k)


def _per_image(ctx, infos, *, n_small, technique, formula, paper, key, cells, params=None,
               cols=None, photo_cell=1.7):
    """One figure per model: rows = images, columns = ``cells(info, x, pix, target)``;
    the ImageNet model's cells drawn ``photo_cell`` inches wide (the small net's 1.7)."""
    figs = []
    for info in infos:
        def build(info=info):
            if info.kind == "small":
                xs, pixs, labels, _ = ctx.samples(n_small)
            else:
                ph = ctx.photos()
                xs, pixs, labels = [p.x[0] for p in ph], [p.pixels for p in ph], [None] * len(ph)
            rows = []
            for x, pix, lab in zip(xs, pixs, labels):
                t = ctx.target(info, x[None], lab)
                rows.append([_img(pix, _name(info, t))] + cells(info, x, pix, t))
            return _grid(rows, cols, cell=1.7 if info.kind == "small" else photo_cell)
        figs.append(Figure(f"{info.name}-{key}", build, technique, formula, paper, params or {},
                           info))
    return figs
