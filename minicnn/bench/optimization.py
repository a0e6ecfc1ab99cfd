"""Benchmarks of image optimization: one style-transfer iteration and one DeepDream step,
minicnn beside the same loop in PyTorch CPU (a hand-built torch SqueezeNet 1.1 holding
the same weights). Registered as sections "style_transfer" and "deepdream".

    from minicnn import bench
    bench.run(["style_transfer", "deepdream"])     # run() imports the section modules

Both sides compute the same thing on a 256×256 image: for style transfer, the forward
pass to the deepest layer used, content + Gram style + TV losses, and the backward pass
to the image (what one L-BFGS function evaluation costs); for DeepDream, a jittered
forward to one layer, ½‖a‖², backward, the normalized step and the clip.
The weights are random (the timing does not depend on them) and copied to torch.
"""
import numpy as np

from ..backend import to_numpy
from .core import _torch, compare, section

__all__ = ["bench_style_transfer", "bench_deepdream"]

SIZE = 256
CONTENT_LAYER = "features.7"
STYLE_LAYERS = ["features.1", "features.4", "features.7", "features.10"]
DREAM_LAYER = "features.10"


def _models():
    """minicnn squeezenet1_1 and, if torch is installed, the torch copy of its ``features``."""
    import minicnn as mc
    model = mc.models.squeezenet1_1(rng=0).eval()
    torch = _torch()
    if torch is None:
        return model, None, None
    nn = torch.nn

    class Fire(nn.Module):
        def __init__(self, cin, s, e1, e3):
            super().__init__()
            self.squeeze, self.expand1x1 = nn.Conv2d(cin, s, 1), nn.Conv2d(s, e1, 1)
            self.expand3x3 = nn.Conv2d(s, e3, 3, padding=1)

        def forward(self, x):
            s = torch.relu(self.squeeze(x))
            return torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], 1)

    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)     # noqa: E731
    features = nn.Sequential(
        nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(), pool(), Fire(64, 16, 64, 64),
        Fire(128, 16, 64, 64), pool(), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
        Fire(512, 64, 256, 256))
    state = {k[len("features."):]: torch.from_numpy(np.ascontiguousarray(v))
             for k, v in model.state_dict().items() if k.startswith("features.")}
    features.load_state_dict(state)
    for p in features.parameters():
        p.requires_grad_(False)
    return model, features.eval(), torch


def _torch_acts(features, x, names):
    """Outputs of features.<i> for the wanted names, running only as far as needed."""
    idx = sorted(int(n.split(".")[1]) for n in names)
    out, acts = x, {}
    for i in range(idx[-1] + 1):
        out = features[i](out)
        if f"features.{i}" in names:
            acts[f"features.{i}"] = out
    return acts


@section("style_transfer")
def bench_style_transfer(repeat):
    from ..techniques import optimize as opt
    from ..techniques.common import frozen
    from ..techniques.style import content_loss, style_loss, tv_loss, gram_targets
    from ..techniques.inversion import code
    model, features, torch = _models()
    rng = np.random.default_rng(0)
    content, style, x = (rng.normal(size=(1, 3, SIZE, SIZE)).astype(np.float32) for _ in range(3))
    n = x.size
    grams = gram_targets(model, style, STYLE_LAYERS)
    objective = -(1e-2 * style_loss(grams, [0.25] * 4)
                  + content_loss(CONTENT_LAYER, code(model, content, CONTENT_LAYER))
                  + 1e-2 * tv_loss(n))

    def ours():
        with frozen(model, eval_mode=True):
            opt._value_and_grad(model, objective, x, (), None, None)

    theirs = None if torch is None else _torch_style(torch, features, content, style, x, n)
    label = f"style transfer iteration squeezenet {SIZE}x{SIZE}"
    return [compare(label, ours, theirs, None, repeat)]


def _torch_style(torch, features, content, style, x, n):
    names = STYLE_LAYERS + [CONTENT_LAYER]
    with torch.no_grad():
        t_style = _torch_acts(features, torch.from_numpy(style), STYLE_LAYERS)
        t_content = _torch_acts(features, torch.from_numpy(content), [CONTENT_LAYER])

    def gram(f):
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)
    t_grams = {k: gram(v) for k, v in t_style.items()}

    def theirs():
        img = torch.from_numpy(x).requires_grad_()
        acts = _torch_acts(features, img, names)
        s = sum(0.25 * ((gram(acts[k]) - t_grams[k]) ** 2).sum() for k in STYLE_LAYERS)
        c = ((acts[CONTENT_LAYER] - t_content[CONTENT_LAYER]) ** 2).mean()
        tv = (((img[..., 1:, :] - img[..., :-1, :]) ** 2).sum()
              + ((img[..., :, 1:] - img[..., :, :-1]) ** 2).sum()) / n
        (1e-2 * s + c + 1e-2 * tv).backward()
        return img.grad
    return theirs


@section("deepdream")
def bench_deepdream(repeat):
    from ..techniques import optimize as opt
    model, features, torch = _models()
    x = np.random.default_rng(0).normal(size=(1, 3, SIZE, SIZE)).astype(np.float32)
    lo, hi = (to_numpy(b) for b in opt.pixel_bounds(model))
    step = 1.5 * (hi - lo) / 255

    def ours():
        opt.ascend(model, opt.energy(DREAM_LAYER), x, 1, step, optimizer="normalized",
                   transforms=[opt.jitter(16)])

    theirs = None if torch is None else _torch_dream(torch, features, x, lo, hi, step)
    label = f"DeepDream step {DREAM_LAYER} {SIZE}x{SIZE}"
    return [compare(label, ours, theirs, None, repeat)]


def _torch_dream(torch, features, x, lo, hi, step):
    t_lo, t_hi, t_step = (torch.from_numpy(a) for a in (lo, hi, step))
    gen = np.random.default_rng(0)

    def theirs():
        dy, dx = (int(v) for v in gen.integers(-16, 17, size=2))
        img = torch.from_numpy(x).requires_grad_()
        a = _torch_acts(features, torch.roll(img, (dy, dx), (2, 3)), [DREAM_LAYER])[DREAM_LAYER]
        (0.5 * (a * a).sum()).backward()
        g = img.grad
        with torch.no_grad():
            return torch.clamp(img + t_step * g / (g.abs().mean() + 1e-12), t_lo, t_hi)
    return theirs
