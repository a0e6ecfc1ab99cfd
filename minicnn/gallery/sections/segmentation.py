"""Section 17: convolutionalization and encoder–decoder segmentation."""
import numpy as np

from ..figure import Figure, Skip
from ._common import section


# ============================================================ segmentation
# the FCN figure: items at the classifier's own 28 px on an 84×84 canvas; a window whose
# top class has p below the threshold is background (the classifier has no such class)
FCN_CANVAS, FCN_ITEMS, FCN_THRESHOLD = 84, (2, 3), 0.8


def fcn_source(ctx):
    """(pixels, labels) the FCN canvases draw their items from: the shipped samples."""
    _, pix, labels, _ = ctx.samples()
    return pix, np.asarray([0 if lab is None else lab for lab in labels])


def fcn_canvas(model, source, seed, index=0):
    """The gallery's FCN canvas ``index``: (image (H, W) uint8, window probabilities
    (K, Ho, Wo), stride, window, placements of the true items)."""
    from ...data.segdata import SegmentationCanvases
    from ...techniques.convolutionalize import convolutionalize, score_maps
    canvases = SegmentationCanvases("test", FCN_CANVAS, length=index + 1, items=FCN_ITEMS,
                                    scale=(1.0, 1.0), seed=seed, source=source)
    img, _, placed = canvases.canvas(index)
    f = convolutionalize(model, (28, 28))
    probs = score_maps(f, model.preprocess.preprocess(img))[0]
    return img, probs, f.stride, f.window, placed


def _centre_cell(p, stride):
    """The score cell whose window is centred on placement p (28 px items: its top-left)."""
    return int(round(p.top / stride[0])), int(round(p.left / stride[1]))


@section("segmentation", "17 · Segmentation")
def segmentation_section(ctx):
    from ...plot.segmentation import class_heatmaps_figure, segmentation_figure
    from ...data.segdata import SEG_CLASSES, SegmentationCanvases
    from ...techniques.convolutionalize import window_labels
    info = ctx.small
    if info.name != "fashion_net":
        raise Skip(f"the segmentation demo is built on fashion_net, not {info.name}")
    source = fcn_source(ctx)

    def fcn():
        img, probs, stride, window, placed = fcn_canvas(info.model, source, ctx.seed)
        labels = window_labels(probs, FCN_THRESHOLD)
        present = sorted({p.label for p in placed})
        items = [(p.label, (p.top, p.left, p.top + p.size, p.left + p.size)) for p in placed]
        right = sum(labels[_centre_cell(p, stride)] == p.label + 1 for p in placed)
        fig = class_heatmaps_figure(img, probs, stride, window, info.labels, classes=present,
                                    labels=labels, threshold=FCN_THRESHOLD, items=items)
        return fig, (f"the classes of the items on the canvas only; the window centred on "
                     f"each item: {right} of {len(placed)} labelled with its class")
    figs = [Figure(f"{info.name}-fcn", fcn, "convolutionalized classifier: class maps on a "
                   "larger canvas",
                   "Linear W (D, C·h·w) → Conv2d with kernel W.reshape(D, C, h, w)",
                   "Long, Shelhamer & Darrell 2015",
                   {"canvas": f"{FCN_CANVAS}×{FCN_CANVAS}", "window": "28×28",
                    "background": f"top p < {FCN_THRESHOLD}"}, info)]

    def trained():
        from ...models import segmentation as seg
        from ...models.registry import find_shipped
        from ...training.segmentation import predict_masks
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
