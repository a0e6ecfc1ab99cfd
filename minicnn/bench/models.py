"""Whole-model benchmarks beside PyTorch CPU: training fashion_net, ImageNet nets forward/backward.

    minicnn bench --only fashion_net_epoch,imagenet_models
"""
import itertools

import numpy as np

from .. import models, ops
from ..autograd import Tensor
from .core import _torch, compare, section
from .reference_torch import torch_model, torch_small_vgg

STEPS = 40            # distinct training batches the timed steps cycle through
CHUNK = 10            # training steps per timed run; the epoch time is extrapolated from them
EPOCH_IMAGES = 60000  # one Fashion-MNIST epoch


def _fashion_batches(batch, steps, rng):
    """``steps`` distinct training batches: Fashion-MNIST's training images where the data is
    on disk (no download), random ones otherwise.

    Distinct batches, as an epoch has, and real images where possible, so that loss and
    gradients behave as in ``minicnn train fashion_net`` rather than on one batch the net
    soon memorizes. (The step time itself did not depend on it when measured: 75 ms per
    step with the loss at 0.002 on a memorized batch, 74 ms for a fresh net.)
    """
    from ..data import load_fashion_mnist
    from ..models.small import FASHION_PREPROCESS
    n = batch * steps
    try:
        images, labels = load_fashion_mnist("train", download=False)
        pick = rng.permutation(len(images))[:n]
        x = FASHION_PREPROCESS.preprocess(images[pick])
        y = labels[pick]
    except FileNotFoundError:
        x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, n)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def _step_matmuls(model, step):
    """The matrix products of one training step, as (a, b) operand pairs: every
    ``numpy.matmul`` call during ``step()`` (the conv roads call ``xp.matmul``), caught by
    swapping the function for the step, and each Linear layer's three products (x Wᵀ,
    g W, gᵀ x, made with ``@``), on arrays of their shapes."""
    from ..nn import Linear
    made, matmul = [], np.matmul

    def record(a, b, *args, **kwargs):
        made.append((a, b))
        return matmul(a, b, *args, **kwargs)
    np.matmul = record
    try:
        batch = step()
    finally:
        np.matmul = matmul
    rng = np.random.default_rng(0)
    for layer in model.modules():
        if isinstance(layer, Linear):
            n_out, n_in = layer.weight.data.shape
            x, w, g = (rng.standard_normal(s).astype(np.float32)
                       for s in ((batch, n_in), (n_out, n_in), (batch, n_out)))
            made += [(x, w.T), (g, w), (g.T, x)]
    return made


def _flops(products):
    """2·m·k·n summed over (a, b) operand pairs, a: (…, m, k) @ b: (k, n), each batch entry
    of a batched product counted."""
    return sum(2 * a[..., :1].size * a.shape[-1] * b.shape[-1] for a, b in products)


@section("fashion_net_epoch")
def bench_fashion_epoch(repeat):
    """One training epoch of fashion_net (60k images, batch 128, Adam), extrapolated from
    runs of CHUNK steps timed alternately with the same net in PyTorch; the steps cycle
    through STEPS distinct batches.

    A second row times only the matrix products of those steps (``_step_matmuls``: the
    same operands, BLAS alone) against the same PyTorch epoch: how much of the ratio the
    products take, and what is left for everything else (ReLU, pooling, the columns' copies,
    the loss, Adam)."""
    from ..nn.optim import Adam
    torch = _torch()
    rng = np.random.default_rng(0)
    batch = 128
    batches = _fashion_batches(batch, STEPS, rng)
    model = models.fashion_net()
    opt = Adam(list(model.parameters()), lr=1e-3)
    our_batches = itertools.cycle(batches)      # each run goes on where the last stopped

    def ours():
        for x, y in itertools.islice(our_batches, CHUNK):
            loss = ops.cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    theirs = None
    if torch is not None:
        net = torch_small_vgg(model).train()
        topt = torch.optim.Adam(net.parameters(), lr=1e-3)
        their_batches = itertools.cycle([(torch.from_numpy(x), torch.from_numpy(y))
                                         for x, y in batches])

        def theirs():
            for tx, ty in itertools.islice(their_batches, CHUNK):
                loss = torch.nn.functional.cross_entropy(net(tx), ty)
                topt.zero_grad()
                loss.backward()
                topt.step()

    def one_step():
        x, y = batches[0]
        loss = ops.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        return len(x)
    products = _step_matmuls(model, one_step)

    def products_only():
        for _ in range(CHUNK):
            for a, b in products:
                np.matmul(a, b)

    rows = [compare(f"fashion_net epoch (60k, from {CHUNK}-step runs)", ours, theirs,
                    repeat=2 * repeat),
            compare(f"  its {len(products)} matmuls a step alone", products_only, theirs,
                    flops=CHUNK * _flops(products), repeat=2 * repeat)]
    scale = EPOCH_IMAGES / (CHUNK * batch)
    for row in rows:
        row["ms"] *= scale
        if row["torch_ms"] is not None:
            row["torch_ms"] *= scale
        if row["flops"]:
            row["flops"] *= scale
    return rows


@section("imagenet_models")
def bench_imagenet_models(repeat):
    """squeezenet1_1, vgg16 and efficientnet_lite0 (depthwise convolutions, BatchNorm,
    TF-SAME padding) at 1×3×224×224: forward, and forward + backward to the input."""
    torch = _torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    rows = []
    for name in ("squeezenet1_1", "vgg16", "efficientnet_lite0"):
        model = getattr(models, name)().eval()
        net = None
        if torch is not None:
            net = torch_model(name).eval()
            model.load_state_dict({k: v.detach().numpy() for k, v in net.state_dict().items()})
            net.requires_grad_(False)
        model.requires_grad_(False)          # gradients to the input only, as visualizations need

        def fwd():
            from ..autograd import no_grad
            with no_grad():
                model(Tensor(x))

        def fwd_bwd():
            xt = Tensor(x.copy(), requires_grad=True)
            model(xt)[0, 1].backward()

        t_fwd = t_bwd = None
        if net is not None:
            tx = torch.tensor(x)

            def t_fwd():
                with torch.no_grad():
                    net(tx)

            def t_bwd():
                xi = tx.clone().requires_grad_(True)
                net(xi)[0, 1].backward()
        rows.append(compare(f"{name} forward 1×3×224×224", fwd, t_fwd, repeat=repeat))
        rows.append(compare(f"{name} forward+backward to input", fwd_bwd, t_bwd, repeat=repeat))
    return rows
