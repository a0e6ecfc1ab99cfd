"""nn: module bookkeeping (names, state_dict, to), layers against PyTorch, and capture."""
from collections import OrderedDict

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, ops
from minicnn.backend import as_backend, backend_name, to_numpy


# ----------------------------------------------------------------- tiny models

class TinyNet(nn.Module):
    """torchvision-style: features / avgpool / classifier, with every kind of state."""

    def __init__(self, p=0.5, rng=0):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False, rng=rng), nn.ReLU6())
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Dropout(p, rng=rng), nn.Linear(24, 5, rng=rng))

    def forward(self, x):
        return self.classifier(ops.flatten(self.avgpool(self.features(x))))


def torch_tiny_net(torch, p=0.5):
    tnn = torch.nn

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), tnn.ReLU6())
            self.avgpool = tnn.AdaptiveAvgPool2d((2, 2))
            self.classifier = tnn.Sequential(tnn.Dropout(p), tnn.Linear(24, 5))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    torch.manual_seed(0)
    return Net()


def small_cnn(rng=0):
    """Conv-ReLU-Pool-Flatten-Linear for (N, 2, 6, 6) inputs."""
    rng = np.random.default_rng(rng)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3 * 3 * 3, 4, rng=rng))


def torch_state_as_numpy(tmodel):
    return OrderedDict((k, v.detach().numpy().copy()) for k, v in tmodel.state_dict().items())


class Spy(nn.Module):
    """Counts its calls: shows which parts of a network actually ran."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def no_capture_slots(model):
    return all("_capture" not in vars(m) for m in model.modules())


# -------------------------------------------------------------- torch parity

@pytest.mark.torch
def test_state_dict_keys_and_shapes_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = TinyNet().state_dict(), torch_tiny_net(torch).state_dict()
    assert list(ours) == list(theirs)       # same names, same order
    assert "features.1.running_mean" in ours and "features.1.num_batches_tracked" in ours
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape), k
    assert ours["features.1.num_batches_tracked"].dtype == np.int64


@pytest.mark.torch
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_forward_backward_and_running_stats_match_torch(dtype, tol, rng):
    """Same weights -> same outputs, gradients and BatchNorm statistics, in train and eval."""
    torch = pytest.importorskip("torch")
    tmodel = torch_tiny_net(torch, p=0.0).to(getattr(torch, np.dtype(dtype).name))
    model = TinyNet(p=0.0).to(dtype)
    model.load_state_dict(torch_state_as_numpy(tmodel))
    assert model.features[0].weight.dtype == dtype

    x = rng.standard_normal((3, 3, 10, 10)).astype(dtype)
    dout = rng.standard_normal((3, 5)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    xm = mc.tensor(x, requires_grad=True)

    # training step: batch statistics, running buffers updated
    out_t, out_m = tmodel.train()(xt), model.train()(xm)
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), rtol=tol, atol=tol)
    out_t.backward(torch.tensor(dout))
    out_m.backward(dout)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=tol, atol=tol)
    for (name, p), (tname, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=tol, atol=tol, err_msg=name)
    theirs = torch_state_as_numpy(tmodel)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(v, theirs[k], rtol=tol, atol=tol, err_msg=k)
    assert int(model.features[1].num_batches_tracked) == 1

    # eval: running statistics, nothing changes
    with torch.no_grad():
        out_t = tmodel.eval()(xt)
    out_m = model.eval()(xm)
    np.testing.assert_allclose(out_m.numpy(), out_t.numpy(), rtol=tol, atol=tol)
    assert int(model.features[1].num_batches_tracked) == 1


@pytest.mark.torch
def test_other_layers_match_torch(rng):
    """ConvTranspose2d, BatchNorm1d, AvgPool2d, MaxPool2d/MaxUnpool2d pair, float64."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(1)
    pairs = [
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         tnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 5)),
        (nn.Conv2d(4, 6, 3, groups=2, rng=0), tnn.Conv2d(4, 6, 3, groups=2), (2, 4, 5, 5)),
        (nn.BatchNorm1d(4), tnn.BatchNorm1d(4), (5, 4)),
        (nn.BatchNorm1d(4), tnn.BatchNorm1d(4), (5, 4, 3)),
        (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
         tnn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 7, 7)),
        (nn.MaxPool2d(3, stride=2, ceil_mode=True), tnn.MaxPool2d(3, stride=2, ceil_mode=True),
         (2, 3, 8, 8)),
    ]
    for ours, theirs, shape in pairs:
        theirs = theirs.double()
        ours.double().load_state_dict(torch_state_as_numpy(theirs))
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(ours(mc.tensor(x)).numpy(),
                                   theirs(torch.tensor(x)).detach().numpy(), atol=1e-10,
                                   err_msg=repr(ours))
    # switches: unpooling puts each maximum back where pooling found it
    x = rng.standard_normal((2, 3, 6, 6))
    y, idx = nn.MaxPool2d(2, return_indices=True)(mc.tensor(x))
    ty, tidx = tnn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(nn.MaxUnpool2d(2)(y, idx).numpy(),
                               tnn.MaxUnpool2d(2)(ty, tidx).numpy(), atol=0)


@pytest.mark.torch
def test_repr_matches_torch_for_conv_and_linear():
    torch = pytest.importorskip("torch")
    for ours, theirs in [
            (nn.Conv2d(3, 64, 3, padding=1), torch.nn.Conv2d(3, 64, 3, padding=1)),
            (nn.Conv2d(8, 8, (3, 1), stride=2, groups=4, bias=False),
             torch.nn.Conv2d(8, 8, (3, 1), stride=2, groups=4, bias=False)),
            (nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1),
             torch.nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)),
            (nn.Linear(10, 3), torch.nn.Linear(10, 3)),
            (nn.ReLU(), torch.nn.ReLU()),
            (nn.AdaptiveAvgPool2d((6, 6)), torch.nn.AdaptiveAvgPool2d((6, 6)))]:
        assert repr(ours) == repr(theirs)


def test_repr_shows_the_tree():
    text = repr(TinyNet())
    assert text.startswith("TinyNet(\n  (features): Sequential(\n"
                           "    (0): Conv2d(3, 4, kernel_size=(3, 3)")
    assert "    (1): BatchNorm2d(4, eps=1e-05, momentum=0.1)\n" in text
    assert ("  (classifier): Sequential(\n    (0): Dropout(p=0.5)\n"
            "    (1): Linear(in_features=24") in text
    assert text.endswith("\n  )\n)")


# ------------------------------------------------------------------ gradients

def test_gradcheck_conv_relu_pool_linear_wrt_input(rng):
    model = small_cnn().double()
    x = rng.standard_normal((2, 2, 6, 6))
    report = mc.gradcheck.check(lambda t: model(t), [x])
    assert report.ok, report


def test_parameter_gradients_flow_and_zero_grad(rng):
    model = small_cnn()
    model(mc.tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------- names and structure

def test_layer_names_and_get_submodule():
    model = TinyNet()
    assert model.layer_names() == [
        "features", "features.0", "features.1", "features.2", "features.3", "features.4",
        "features.5", "avgpool", "classifier", "classifier.0", "classifier.1"]
    assert model.get_submodule("features.4") is model.features[4]
    assert [n for n, _ in model.named_parameters()] == [
        "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
        "features.4.weight", "classifier.1.weight", "classifier.1.bias"]
    assert [n for n, _ in model.named_buffers()] == [
        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"]
    assert len(model.children()) == 3


def test_wrong_layer_name_lists_the_valid_names():
    model = TinyNet()
    with pytest.raises(KeyError, match=r"'features\.9'.*Valid layer names: features, features\.0, "
                                       r".*classifier\.1"):
        model.get_submodule("features.9")
    with pytest.raises(KeyError, match="Did you mean 'classifier'"):
        model.get_submodule("clasifier")


def test_sequential_indexing_slicing_and_ordered_dict_names():
    seq = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU(), pool=nn.MaxPool2d(2)))
    assert seq.layer_names() == ["conv", "act", "pool"] and len(seq) == 3
    assert isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.MaxPool2d)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and head.layer_names() == ["conv", "act"]
    assert list(seq.state_dict()) == ["conv.weight", "conv.bias"]
    with pytest.raises(TypeError, match="layer '1' is a int"):
        nn.Sequential(nn.ReLU(), 3)


def test_shape_errors_name_the_layer_and_both_shapes():
    model = TinyNet()
    x = mc.tensor(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d 'features\.0' expects 3 input channels, "
                                         r"got input of shape \(1, 2, 8, 8\)"):
        model(x)
    seq = small_cnn()
    seq(mc.tensor(np.zeros((1, 2, 6, 6), np.float32)))
    with pytest.raises(ValueError, match=r"Linear '4' expects 27 input features, got input "
                                         r"of shape \(1, 48\)"):
        seq(mc.tensor(np.zeros((1, 2, 8, 8), np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm2d expects input \(N, C, H, W\) with C = 4, "
                                         r"got input of shape \(2, 3, 5, 5\)"):
        nn.BatchNorm2d(4)(mc.tensor(np.zeros((2, 3, 5, 5), np.float32)))


# ---------------------------------------------------------------- state_dict

def test_state_dict_is_a_copy_and_round_trips():
    a, b = TinyNet(rng=0), TinyNet(rng=1)
    state = a.state_dict()
    state["features.0.weight"][...] = 7.0
    assert not np.any(a.features[0].weight.data == 7.0)
    b.load_state_dict(a.state_dict())
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va, vb, err_msg=k)


def test_load_state_dict_errors_name_the_keys_and_shapes():
    model = TinyNet()
    state = model.state_dict()
    missing = OrderedDict((k, v) for k, v in state.items() if k != "features.1.running_var")
    with pytest.raises(nn.StateDictError, match=r"missing keys \(1\): features\.1\.running_var"):
        model.load_state_dict(missing)
    extra = OrderedDict(state, **{"classifier.2.weight": np.zeros(3)})
    with pytest.raises(nn.StateDictError, match=r"unexpected keys \(1\): classifier\.2\.weight"):
        model.load_state_dict(extra)
    wrong = OrderedDict(state, **{"classifier.1.weight": np.zeros((5, 25))})
    with pytest.raises(ValueError, match=r"'classifier\.1\.weight' has shape \(5, 25\) in the "
                                         r"state dict but \(5, 24\) in the model"):
        model.load_state_dict(wrong)
    result = model.load_state_dict(extra, strict=False)
    assert result.unexpected_keys == ["classifier.2.weight"] and result.missing_keys == []
    result = model.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["features.1.running_var"]


def test_load_state_dict_converts_to_the_model_backend_and_dtype():
    model = TinyNet().to("strict")
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v
             for k, v in TinyNet(rng=5).state_dict().items()}
    model.load_state_dict(state)
    w = model.classifier[1].weight.data
    assert backend_name(w) == "strict" and w.dtype == np.float32
    assert backend_name(model.features[1].running_mean) == "strict"
    np.testing.assert_allclose(to_numpy(w), state["classifier.1.weight"], rtol=1e-6)


# ---------------------------------------------------------- backends, dtypes

def test_to_backend_moves_everything_and_runs(backend_name, rng):
    model = TinyNet()
    params = model.parameters()
    assert model.to(backend_name) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]   # same objects
    for k, v in model.state_dict().items():
        assert mc.backend.backend_name(v) == backend_name, k
    x = mc.tensor(as_backend(rng.standard_normal((2, 3, 10, 10)).astype(np.float32), backend_name),
                  requires_grad=True)
    out = model.train()(x)
    assert out.backend == backend_name
    out.sum().backward()
    assert all(mc.backend.backend_name(p.grad) == backend_name for p in model.parameters())
    model.eval()(x)
    model.to("numpy")
    assert all(type(v) is np.ndarray for v in model.state_dict().values())


def test_default_backend_and_seeded_init():
    with mc.use("strict"):
        conv = nn.Conv2d(2, 3, 3, rng=0)
    assert conv.weight.backend == "strict" and conv.weight.dtype == np.float32
    again = nn.Conv2d(2, 3, 3, rng=0)
    np.testing.assert_array_equal(to_numpy(conv.weight.data), again.weight.data)
    bound = 1 / np.sqrt(2 * 3 * 3)           # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(again.weight.data).max() <= bound and np.abs(again.bias.data).max() <= bound
    assert np.abs(again.weight.data).max() > 0.8 * bound


def test_dtype_conversion_keeps_parameters_and_integer_buffers():
    model = TinyNet().double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.features[1].running_var.dtype == np.float64
    assert model.features[1].num_batches_tracked.dtype == np.int64
    assert all(p.dtype == np.float32 for p in model.float().parameters())
    with pytest.raises(ValueError, match="neither a backend"):
        model.to("gpu0")


# --------------------------------------------------------------- train / eval

def test_train_eval_switch_dropout_and_batchnorm(rng):
    x = mc.tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32) + 2.0)
    drop = nn.Dropout(0.5, rng=3)
    y = drop(x).numpy()
    assert 0.3 < np.mean(y == 0) < 0.7 and np.allclose(y[y != 0], 2 * x.numpy()[y != 0])
    np.testing.assert_array_equal(nn.Dropout(0.5, rng=3)(x).numpy(), y)   # seeded: repeats
    np.testing.assert_array_equal(drop.eval()(x).numpy(), x.numpy())

    bn = nn.BatchNorm2d(3)
    y_train = bn(x).numpy()
    np.testing.assert_allclose(y_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    mean_after = bn.running_mean.copy()
    assert np.all(mean_after > 0.1)                      # moved toward the batch mean (~2)
    y_eval = bn.eval()(x).numpy()
    assert not np.allclose(y_eval, y_train)
    np.testing.assert_array_equal(bn.running_mean, mean_after)   # eval leaves stats alone
    model = TinyNet()
    assert all(not m.training for m in model.eval().modules())
    assert all(m.training for m in model.train().modules())


# ------------------------------------------------------------------ capture

def test_capture_activation_equals_the_subnetwork_by_hand(rng):
    model = small_cnn()
    x = mc.tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32))
    with nn.capture(model, ["1", "2"]) as acts:
        out = model(x)
    conv = model[0]
    by_hand = ops.relu(ops.conv2d(x, conv.weight, conv.bias, padding=1))
    np.testing.assert_allclose(acts["1"].numpy(), by_hand.numpy(), rtol=1e-6)
    np.testing.assert_allclose(acts["2"].numpy(), ops.max_pool2d(by_hand, 2).numpy(), rtol=1e-6)
    assert acts["1"].shape == (2, 3, 6, 6)
    assert mc.capture is nn.capture
    assert isinstance(out, mc.Tensor)


def test_capture_grad_equals_hand_computation(rng):
    """The pooled map feeds Flatten + Linear, so d out / d pooled = (dout @ W) reshaped."""
    model = small_cnn()
    x = mc.tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32))
    with nn.capture(model, "2") as acts:
        out = model(x)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(dout)                                   # after the block: acts still hold grads
    expected = (dout @ model[4].weight.data).reshape(acts["2"].shape)
    np.testing.assert_allclose(acts["2"].grad, expected, rtol=1e-5, atol=1e-6)


def test_capture_leaves_nothing_behind_even_on_error(rng):
    model = TinyNet()
    x = mc.tensor(rng.standard_normal((2, 3, 10, 10)).astype(np.float32))
    with nn.capture(model, ["features.2", "classifier"]):
        assert "_capture" in vars(model.features[2])
        model(x)
    assert no_capture_slots(model)
    with pytest.raises(RuntimeError, match="boom"):
        with nn.capture(model, ["features.2"]):
            model(x)
            raise RuntimeError("boom")
    assert no_capture_slots(model)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        with nn.capture(model, ["features.2"], stop=True):
            model(mc.tensor(np.zeros((1, 1, 10, 10), np.float32)))
    assert no_capture_slots(model)


def test_nested_captures_of_the_same_layer(rng):
    model = small_cnn()
    x = mc.tensor(rng.standard_normal((1, 2, 6, 6)).astype(np.float32))
    with nn.capture(model, ["1"]) as outer:
        with nn.capture(model, ["1", "2"]) as inner:
            model(x)
        assert len(vars(model[1])["_capture"]) == 1      # the outer one is still there
        model(x)
    assert outer["1"] is not inner["1"] and no_capture_slots(model)


def test_capture_stop_runs_only_up_to_the_last_named_layer(rng):
    spy_mid, spy_end = Spy(), Spy()
    model = nn.Sequential(nn.Conv2d(2, 3, 3, rng=0), spy_mid, nn.ReLU(), spy_end, nn.Flatten())
    x = mc.tensor(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    reached_end_of_block = False
    with nn.capture(model, ["1", "0"], stop=True) as acts:
        model(x)
        reached_end_of_block = True                     # skipped: the forward stopped
    assert not reached_end_of_block
    assert spy_mid.calls == 1 and spy_end.calls == 0
    assert acts["0"].shape == (1, 3, 3, 3)
    with pytest.raises(KeyError, match="did not reach it"):
        acts["2"]
    feats = nn.forward_to(model, x, "2")
    np.testing.assert_array_equal(feats.numpy(), np.maximum(acts["0"].numpy(), 0))
    assert spy_end.calls == 0 and no_capture_slots(model)


def test_capture_modify_replaces_a_layer_output(rng):
    model = small_cnn()
    x = mc.tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32))
    with nn.capture(model, [], modify={"1": lambda t: t * 0.0}) as acts:
        out = model(x)
    np.testing.assert_allclose(acts["1"].numpy(), 0)
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(model[4].bias.data, (2, 4)), atol=1e-7)
    with pytest.raises(ValueError, match=r"modify\['1'\] must return a Tensor of shape \(2, 3, 6, 6\)"):
        with nn.capture(model, ["1"], modify={"1": lambda t: t[:1]}):
            model(x)
    assert no_capture_slots(model)


def test_capture_of_pool_with_indices_keeps_the_indices(rng):
    model = nn.Sequential(nn.MaxPool2d(2, return_indices=True))
    x = mc.tensor(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
    with nn.capture(model, ["0"]) as acts:
        y, idx = model(x)
    assert acts["0"] is y and idx.shape == (1, 1, 2, 2)


def test_capture_unknown_name_lists_the_valid_names():
    with pytest.raises(KeyError, match=r"no layer 'features\.99'.*features\.0.*classifier\.1"):
        with nn.capture(TinyNet(), ["features.99"]):
            pass


def test_layers_and_ops_of_the_same_name_say_which_is_which():
    """mc.nn.Conv2d (a Module) and mc.ops.conv.Conv2d (its Function) share a name: the first
    line of each docstring says which one it is and names the other, which must exist."""
    import importlib
    import inspect
    import pkgutil
    import minicnn.ops
    from minicnn.autograd import Function
    from minicnn.nn import Module
    layers = {n: c for n, c in vars(mc.nn).items() if inspect.isclass(c) and issubclass(c, Module)}
    pairs = []
    for info in pkgutil.iter_modules(minicnn.ops.__path__):
        mod = importlib.import_module(f"minicnn.ops.{info.name}")
        for name, op in vars(mod).items():
            if inspect.isclass(op) and issubclass(op, Function) and op.__module__ == mod.__name__ \
                    and name in layers:
                pairs.append(name)
                assert op.__doc__.splitlines()[0] == \
                    f"The Function (forward + backward); the layer is ``minicnn.nn.{name}``."
                first = layers[name].__doc__.splitlines()[0]
                assert first == f"The layer (a Module); its op is ``{mod.__name__}.{name}``."
    assert {"Conv2d", "Linear", "ReLU", "MaxPool2d", "Dropout"} <= set(pairs)
