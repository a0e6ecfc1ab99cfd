"""Gradient-based visualization beside PyTorch CPU, on squeezenet1_1 at 1×3×224×224.

    minicnn bench --only attribution

Rows: saliency (one backward to the image), guided backprop (PyTorch: backward hooks
clamping every ReLU's input gradient at 0), Grad-CAM at features.12 (PyTorch: the
activation kept with retain_grad), and occlusion with a 32-pixel patch at stride 8
(625 occluded copies, forward only, in batches of 64). Both sides use the same random
weights, the same image, parameters frozen (gradients to the input only).
"""
import numpy as np

from .. import models
from .core import _torch, compare, section
from .reference_torch import torch_model

SIZE, TARGET, PATCH, STRIDE, BATCH = 224, 281, 32, 8, 64


def _torch_occlusion(torch, net, x, target):
    """The same computation in PyTorch: masks by broadcasting, forward in batches."""
    H = x.shape[2]
    starts = torch.arange(0, H - PATCH + 1, STRIDE)
    r, c = (a.reshape(-1) for a in torch.meshgrid(starts, starts, indexing="ij"))
    ys = torch.arange(H)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    gray = torch.tensor([(128 / 255 - m) / s for m, s in zip(mean, std)]).reshape(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(r), BATCH):
            rr, cc = r[i:i + BATCH, None], c[i:i + BATCH, None]
            inside = (((ys >= rr) & (ys < rr + PATCH))[:, :, None]
                      & ((ys >= cc) & (ys < cc + PATCH))[:, None, :])
            batch = torch.where(inside[:, None], gray, x)
            out.append(torch.softmax(net(batch), 1)[:, target])
    return torch.cat(out)


@section("attribution")
def bench_attribution(repeat):
    from ..techniques.gradcam import grad_cam
    from ..techniques.gradients import guided_backprop, saliency
    from ..techniques.occlusion import occlusion
    torch = _torch()
    model = models.squeezenet1_1(rng=0).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    layer = model.default_cam_layer
    ours = {
        "saliency": lambda: saliency(model, x, TARGET),
        "guided backprop": lambda: guided_backprop(model, x, TARGET),
        "Grad-CAM": lambda: grad_cam(model, x, TARGET, layer),
        f"occlusion {PATCH}px stride {STRIDE}": lambda: occlusion(
            model, x, TARGET, PATCH, STRIDE, fill="gray", batch_size=BATCH),
    }
    theirs = dict.fromkeys(ours)
    if torch is not None:
        net = torch_model("squeezenet1_1").eval()
        net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
        net.requires_grad_(False)
        tx = torch.from_numpy(x)
        relus = [m for m in net.modules() if isinstance(m, torch.nn.ReLU)]

        def gradient():
            xg = tx.clone().requires_grad_()
            net(xg)[0, TARGET].backward()
            return xg.grad

        def guided():
            hooks = [m.register_full_backward_hook(lambda m, gin, gout: (gin[0].clamp(min=0),))
                     for m in relus]
            try:
                return gradient()
            finally:
                for h in hooks:
                    h.remove()

        def cam():
            kept = {}
            hook = net.features[12].register_forward_hook(lambda m, i, o: kept.update(a=o))
            try:
                xg = tx.clone().requires_grad_()
                out = net(xg)
                kept["a"].retain_grad()
                out[0, TARGET].backward()
            finally:
                hook.remove()
            a, g = kept["a"].detach(), kept["a"].grad
            m = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
            return torch.nn.functional.interpolate(m, size=(SIZE, SIZE), mode="bilinear",
                                                   align_corners=False)[0, 0]

        theirs = {"saliency": lambda: gradient().abs().amax(1),
                  "guided backprop": guided, "Grad-CAM": cam,
                  f"occlusion {PATCH}px stride {STRIDE}": lambda: _torch_occlusion(
                      torch, net, tx, TARGET)}
    rows = []
    for name, fn in ours.items():
        slow = name.startswith("occlusion")
        rows.append(compare(f"{name:<26} squeezenet1_1 {SIZE}", fn, theirs[name],
                            repeat=max(1, repeat // 3) if slow else repeat))
    return rows
