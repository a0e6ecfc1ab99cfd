"""Section 17: convolutionalization and encoder–decoder segmentation."""
import numpy as np

from ..figure import Figure, Skip
from ._common import section


# ============================================================ segmentation
@section("segmentation", "17 · Segmentation")
def segmentation_section(ctx):
    from ...plot.segmentation import class_heatmaps_figure, segmentation_figure
    from ...data.segdata import SEG_CLASSES, SegmentationCanvases
    from ...techniques.convolutionalize import convolutionalize, score_maps
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
