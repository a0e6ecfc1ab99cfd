"""Image-to-image networks: an encoder that pools, a decoder that up-samples, a score per pixel.

    model = segnet(pretrained_encoder=True)   # decoder: max-unpool with the encoder's switches
    model = segnet_transposed()               # decoder: learned stride-2 transposed convs
    model = unet()                            # transposed convs + encoder features concatenated
    logits = model(x)                         # (N, 1, H, W) -> (N, 11, H, W), H, W multiples of 8

Encoder (all three): blocks of 3×3 conv / ReLU, each closed by a 2×2 max-pool
that keeps its argmax indices — the same layer names as fashion_net's
``features`` (``encoder.features.0`` = ``features.0``), so its trained convs
can initialize the first blocks (transfer from a pretrained trunk).

Decoder: one ``UpBlock`` per encoder block, deepest first, each

    up-sample ×2  ->  [concatenate the encoder features of that scale]  ->  3×3 conv, ReLU

    "unpool"     SegNet (Badrinarayanan et al. 2017): max_unpool2d puts each value back
                 at the position its pooling window chose (the switches), zeros elsewhere;
                 no parameters, the convs that follow fill in the sparse map.
    "transpose"  a learned ConvTranspose2d, kernel 2, stride 2:  Ho = (H − 1)·2 + 2 = 2H.
    skips        U-Net (Ronneberger et al. 2015): the encoder's pre-pool features of the same
                 scale are concatenated to the up-sampled ones (fine detail the pooling lost).

A final 1×1 conv gives the class scores of every pixel. Convs start from He
initialization (no normalization layers here); the transferred trunk overrides it.
Widths 16/32/64 keep a 64×64 canvas cheap on a CPU (~0.1 M parameters, < 0.5 MB).
"""
from collections import namedtuple

import numpy as np

from .. import nn, ops
from ..backend import like, to_numpy
from ..data.images import Preprocess
from ..ops._util import shape_of
from .pretrained import load_shipped

__all__ = ["Encoder", "UpBlock", "EncoderDecoder", "segnet", "segnet_transposed", "unet",
           "init_encoder_from", "SEG_PREPROCESS", "SEG_WIDTHS"]

# Fashion-MNIST's pixel statistics, so a trunk trained by fashion_net sees the input it knows.
SEG_PREPROCESS = Preprocess(mean=(0.2860,), std=(0.3530,), scale=1 / 255, input_size=None)
SEG_WIDTHS = ((16, 16), (32, 32), (64, 64))

Skip = namedtuple("Skip", ["features", "indices", "layer"])
Skip.__doc__ = "What an encoder pooling layer hands the decoder: its input, its argmax, its name."


class Encoder(nn.Module):
    """Blocks of (3×3 conv, ReLU)× len(block), then a 2×2 max-pool keeping the indices.

    forward(x) -> (deepest features, [Skip per pooling layer, shallowest first]).
    """

    def __init__(self, in_channels=1, widths=SEG_WIDTHS, norm=False, seed=0):
        super().__init__()
        layers, c = [], in_channels
        for block in widths:
            for w in block:
                layers.append(nn.Conv2d(c, w, 3, padding=1, rng=seed + len(layers)))
                layers += [nn.BatchNorm2d(w), nn.ReLU()] if norm else [nn.ReLU()]
                c = w
            layers.append(nn.MaxPool2d(2, 2, return_indices=True))
        self.features = nn.Sequential(*layers)
        self.block_channels = [block[-1] for block in widths]
        self.stride = 2 ** len(widths)

    def pool_names(self):
        prefix = f"{self._name}.features" if self._name else "features"
        return [f"{prefix}.{n}" for n, m in self.features.named_children()
                if isinstance(m, nn.MaxPool2d)]

    def forward(self, x):
        skips, names = [], iter(self.pool_names())
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                pooled, indices = layer(x)
                skips.append(Skip(x, indices, next(names)))
                x = pooled
            else:
                x = layer(x)
        return x, skips


class UpBlock(nn.Module):
    """Up-sample ×2 ("unpool" with the skip's indices, or "transpose"), optionally concatenate
    the skip's features (``skip_channels`` > 0), then 3×3 conv ``-> out_channels`` and ReLU."""

    def __init__(self, mode, in_channels, out_channels, up_channels=None, skip_channels=0,
                 norm=False, seed=0):
        super().__init__()
        if mode not in ("unpool", "transpose"):
            raise ValueError(f"UpBlock: mode must be 'unpool' or 'transpose', got {mode!r}")
        self.mode, self.skip_channels = mode, skip_channels
        if mode == "unpool":
            up_channels = in_channels            # unpooling moves values, it keeps the channels
            self.up = nn.MaxUnpool2d(2, 2)
        else:
            up_channels = up_channels or in_channels
            self.up = nn.ConvTranspose2d(in_channels, up_channels, 2, stride=2, rng=seed)
            self.up_norm = nn.BatchNorm2d(up_channels) if norm else nn.Identity()
            self.up_relu = nn.ReLU()
        self.conv = nn.Conv2d(up_channels + skip_channels, out_channels, 3, padding=1, rng=seed + 1)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x, skip):
        if self.mode == "unpool":
            x = self.up(x, skip.indices, output_size=shape_of(skip.features)[2:])
        else:
            x = self.up_relu(self.up_norm(self.up(x)))
        if self.skip_channels:
            got, want = shape_of(skip.features), shape_of(x)
            if got[0] != want[0] or got[2:] != want[2:] or got[1] != self.skip_channels:
                raise ValueError(
                    f"{self.label()}: cannot concatenate the skip from '{skip.layer}' of shape "
                    f"{got} to the up-sampled features of shape {want}: the skip needs shape "
                    f"{(want[0], self.skip_channels, *want[2:])} (same N, H, W; "
                    f"{self.skip_channels} channels)")
            x = ops.concat([x, skip.features], axis=1)
        return self.relu(self.norm(self.conv(x)))


class EncoderDecoder(nn.Module):
    """encoder -> decoder (one UpBlock per pooling, deepest first) -> 1×1 conv to class scores.

    decoder: "unpool" (SegNet) or "transpose"; skips: concatenate encoder features (U-Net);
    widths: channels of each encoder block's convs; norm: BatchNorm2d after every conv (off
    by default: plain conv/ReLU like fashion_net, whose convs the encoder can take over).
    Input (N, in_channels, H, W) with H, W multiples of the encoder's total stride
    (2 ** number of blocks); output (N, num_classes, H, W).
    """

    def __init__(self, decoder="unpool", skips=False, num_classes=11, in_channels=1,
                 widths=SEG_WIDTHS, norm=False, seed=0):
        super().__init__()
        self.encoder = Encoder(in_channels, widths, norm, seed)
        chans = self.encoder.block_channels                  # e.g. [16, 32, 64]
        blocks = []
        for level in range(len(chans) - 1, -1, -1):          # deepest first
            c_in, c_out = chans[level], chans[max(level - 1, 0)]
            blocks.append(UpBlock(decoder, c_in, c_out,
                                  up_channels=c_out if skips else c_in,
                                  skip_channels=chans[level] if skips else 0,
                                  norm=norm, seed=seed + 200 + 10 * level))
        self.decoder = nn.Sequential(*blocks)
        self.head = nn.Conv2d(chans[0], num_classes, 1, rng=seed + 300)
        _he_init(self, seed)
        self.num_classes = num_classes
        self.preprocess = SEG_PREPROCESS
        self.default_cam_layer = "decoder.0.relu"

    def forward(self, x):
        n, c, h, w = shape_of(x)
        s = self.encoder.stride
        if h % s or w % s:
            pools = ", ".join(self.encoder.pool_names())
            raise ValueError(
                f"{type(self).__name__}: input of shape {(n, c, h, w)} has H×W = {h}×{w}, not "
                f"divisible by the encoder's total stride {s} (2×2 max-pools {pools}); the "
                f"decoder could not restore the size. Use sides that are multiples of {s}, "
                f"e.g. {max(s, h // s * s)}×{max(s, w // s * s)}")
        y, skips = self.encoder(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            y = block(y, skip)
        return self.head(y)


def _he_init(model, seed):
    """He et al. (2015) init of every conv, w ~ N(0, 2 / fan_in), b = 0 (gain 1 for the head):
    without normalization layers, PyTorch's smaller default would shrink the signal ~√6-fold per
    conv/ReLU through the ~10 layers. fan_in = input values per output pixel (for a transposed
    conv, in_channels·kh·kw / (sh·sw))."""
    rng = np.random.default_rng(seed + 1000)
    for name, m in model.named_modules():
        if isinstance(m, nn.ConvTranspose2d):
            fan_in = m.in_channels * np.prod(m.kernel_size) / np.prod(m.stride)
        elif isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * np.prod(m.kernel_size)
        else:
            continue
        gain = 1.0 if name == "head" else 2.0
        w = rng.normal(0.0, np.sqrt(gain / fan_in), m.weight.shape).astype(np.float32)
        m.weight.data = like(w, m.weight.data)
        if m.bias is not None:
            m.bias.data = m.bias.data * 0


def init_encoder_from(model, classifier):
    """Copy a classifier's trained convs (e.g. fashion_net's ``features``) into the encoder's
    convs, pairing them in order while the shapes agree; returns the names of the copied convs."""
    ours = [(n, m) for n, m in model.encoder.features.named_children() if isinstance(m, nn.Conv2d)]
    theirs = [(n, m) for n, m in classifier.get_submodule("features").named_children()
              if isinstance(m, nn.Conv2d)]
    copied = []
    for (name, mine), (_, conv) in zip(ours, theirs):
        if mine.weight.shape != conv.weight.shape or (mine.bias is None) != (conv.bias is None):
            break
        mine.weight.data = like(to_numpy(conv.weight.data), mine.weight.data)
        if mine.bias is not None:
            mine.bias.data = like(to_numpy(conv.bias.data), mine.bias.data)
        copied.append(f"encoder.features.{name}")
    if not copied:
        raise ValueError(
            f"init_encoder_from: the first conv of {type(classifier).__name__}.features has "
            f"weight shape {theirs[0][1].weight.shape if theirs else None}, the encoder's first "
            f"conv {ours[0][1].weight.shape}: no trained conv fits the encoder")
    return copied


def _build(arch, decoder, skips, pretrained, pretrained_encoder, **kwargs):
    model = EncoderDecoder(decoder, skips, **kwargs)
    model.arch = arch
    if pretrained_encoder is True:
        from .small import fashion_net
        pretrained_encoder = fashion_net(pretrained=True)
    if pretrained_encoder:
        model.transferred = init_encoder_from(model, pretrained_encoder)
    if pretrained:
        load_shipped(model, arch)
    return model


def segnet(pretrained=False, pretrained_encoder=None, num_classes=11, in_channels=1,
           widths=SEG_WIDTHS, norm=False, seed=0):
    """SegNet-style: max-pool switches -> max-unpool decoder. ``pretrained``: the weights
    minicnn trained (weights/segnet.npz); ``pretrained_encoder``: True (fashion_net's
    trained convs) or a classifier with ``features``, to initialize the encoder."""
    return _build("segnet", "unpool", False, pretrained, pretrained_encoder,
                  num_classes=num_classes, in_channels=in_channels, widths=widths, norm=norm,
                  seed=seed)


def segnet_transposed(pretrained=False, pretrained_encoder=None, num_classes=11, in_channels=1,
                      widths=SEG_WIDTHS, norm=False, seed=0):
    """The same encoder, decoder up-sampling with learned stride-2 transposed convs."""
    return _build("segnet_transposed", "transpose", False, pretrained, pretrained_encoder,
                  num_classes=num_classes, in_channels=in_channels, widths=widths, norm=norm,
                  seed=seed)


def unet(pretrained=False, pretrained_encoder=None, num_classes=11, in_channels=1,
         widths=SEG_WIDTHS, norm=False, seed=0):
    """U-Net-style: transposed-conv up-sampling + the encoder's features of the same scale
    concatenated before each decoder conv."""
    return _build("unet", "transpose", True, pretrained, pretrained_encoder,
                  num_classes=num_classes, in_channels=in_channels, widths=widths, norm=norm,
                  seed=seed)
