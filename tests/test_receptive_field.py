"""Effective receptive field: its support is the theoretical (geometric) field, (2k+1)² after
k 3×3 convs; the geometric field itself is tested in test_filters_top.py."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.nn import UnknownLayerError
from minicnn.techniques.receptive_field import effective_receptive_field, receptive_field


def conv_stack(k, relu, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(k):
        layers.append(nn.Conv2d(2 if not layers else 3, 3, 3, padding=1, rng=rng))
        if relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double()


def support(m):
    rows, cols = np.nonzero(m)
    return rows.min(), rows.max(), cols.min(), cols.max(), np.count_nonzero(m)


@pytest.mark.parametrize("relu", [False, True])
def test_k_stacked_3x3_convs_have_an_erf_of_exactly_2k_plus_1_squared(relu, backend_name):
    """One map per layer; after conv k the support is the (2k+1)×(2k+1) square centred on
    the unit (7, 7) of a 15×15 input: every pixel inside matters, none outside."""
    model = conv_stack(4, relu).to(backend_name)
    names = [n for n in model.layer_names() if isinstance(model.get_submodule(n), nn.Conv2d)]
    maps = effective_receptive_field(model, names, (2, 15, 15), n_samples=32, batch_size=8)
    assert list(maps) == names
    for k, name in enumerate(names, start=1):
        m = maps[name]
        assert m.shape == (15, 15) and type(m) is np.ndarray
        assert support(m) == (7 - k, 7 + k, 7 - k, 7 + k, (2 * k + 1) ** 2), (name, support(m))


def test_the_erf_is_an_average_over_seeded_random_inputs():
    model = conv_stack(2, relu=True)
    a = effective_receptive_field(model, "3", (2, 9, 9), n_samples=12, batch_size=5, seed=1)
    b = effective_receptive_field(model, "3", (2, 9, 9), n_samples=12, batch_size=12, seed=1)
    c = effective_receptive_field(model, "3", (2, 9, 9), n_samples=12, batch_size=12, seed=2)
    np.testing.assert_allclose(a["3"], b["3"], rtol=1e-12)     # the batch size changes nothing
    assert not np.allclose(a["3"], c["3"])                      # the seed does
    # the centre matters most: the ERF mass concentrates in the middle of the field
    assert a["3"][4, 4] == a["3"].max()


def test_the_erf_grows_with_depth_on_fashion_net():
    model = mc.models.fashion_net().eval()
    layers = ["features.1", "features.3", "features.6", "features.8"]
    maps = effective_receptive_field(model, layers, n_samples=8)   # shape from preprocess
    sizes = [np.count_nonzero(maps[n].any(axis=0)) for n in layers]
    assert sizes == [3, 5, 10, 14]          # 3, 5, then ×2 by the pool: 10, 14 pixels wide
    # the support is the theoretical receptive field of the centre unit (no border here)
    assert sizes == [receptive_field(model, n).size[1] for n in layers]


def test_bad_inputs():
    model = conv_stack(2, relu=False)
    with pytest.raises(UnknownLayerError, match="Valid layer names: 0, 1"):
        effective_receptive_field(model, "features.0", (2, 9, 9))
    with pytest.raises(ValueError, match="give input_shape"):
        effective_receptive_field(model, "0")
    with pytest.raises(ValueError, match="input_shape must be"):
        effective_receptive_field(model, "0", (9, 9))
    flat = nn.Sequential(nn.Flatten(), nn.Linear(18, 3)).double()
    with pytest.raises(ValueError, match="needs a spatial layer"):
        effective_receptive_field(flat, "1", (2, 3, 3))


def test_erf_figure(tmp_path):
    from minicnn.plot.attribution import erf_figure
    from minicnn.plot.core import save_figure
    maps = effective_receptive_field(conv_stack(3, relu=True), ["1", "3", "5"], (2, 11, 11),
                                     n_samples=4)
    fig = erf_figure(maps)
    assert [ax.get_title() for ax in fig.axes] == [f"{n}\nsupport {w} px"
                                                   for n, w in (("1", 3), ("3", 5), ("5", 7))]
    save_figure(fig, str(tmp_path / "erf.png"))
