"""ONNX export beyond the registry's models: reused layers, functional ops, errors that say
where, opsets and their IR versions, float64 examples, the metadata a file carries, and
output paths checked before any work.

Parity is measured against minicnn's own forward on the same batch, in float64, as the largest
difference relative to the largest output (the exported graphs run in float32).
"""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, ops
from minicnn.autograd import Function, no_grad

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

RTOL = 1e-5


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def forward(model, x):
    with no_grad():
        return model(mc.tensor(x)).numpy()


def relative_error(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def images(n, c=3, size=32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, size, size)).astype(np.float32)


class TutorialNet(nn.Module):
    """The PyTorch tutorial's CIFAR net: ONE MaxPool2d layer used after both convs."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5, rng=0), nn.Conv2d(6, 16, 5, rng=1)
        self.pool, self.relu = nn.MaxPool2d(2, 2), nn.ReLU()
        self.fc1, self.fc2 = nn.Linear(16 * 5 * 5, 120, rng=2), nn.Linear(120, 10, rng=3)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


class Functional(nn.Module):
    """Functional ops and activations in a forward, no layer of their own."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, rng=0)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, rng=1)

    def forward(self, x):
        h = ops.relu6(self.conv(x) * 3.0)
        h, idx = ops.max_pool2d(h, 2, 2, padding=1, ceil_mode=True, return_indices=True)
        h = ops.max_unpool2d(ops.tanh(h), idx, output_size=(32, 32))     # 17×17 back to 32×32
        h = ops.avg_pool2d(ops.sigmoid(h), 2)
        return ops.concat([self.up(h), ops.sigmoid(self.up(h))], axis=1)  # `up` called twice


def test_a_pool_layer_used_twice_exports_as_two_pools(tmp_path):
    """One MaxPool2d module called twice gives two MaxPool nodes, named pool and pool_2."""
    model, x = TutorialNet(), images(5)
    proto = mc.io.export_onnx(model, x[:1], tmp_path / "t.onnx")
    pools = [n.name for n in proto.graph.node if n.op_type == "MaxPool"]
    assert pools == ["pool", "pool_2"]
    assert relative_error(run_onnx(tmp_path / "t.onnx", x), forward(model, x)) < RTOL


def test_functional_ops_and_activations_export(tmp_path):
    """relu6, a padded ceil-mode max_pool2d whose indices feed max_unpool2d, tanh, sigmoid,
    avg_pool2d, a product with a number, and a transposed conv layer called twice — no layer of
    their own for most — give minicnn's numbers in onnxruntime."""
    model, x = Functional(), images(2)
    proto = mc.io.export_onnx(model, x[:1], tmp_path / "f.onnx")
    ops_used = {n.op_type for n in proto.graph.node}
    assert {"Clip", "Mul", "MaxPool", "MaxUnpool", "Tanh", "Sigmoid", "AveragePool",
            "ConvTranspose", "Concat"} <= ops_used
    assert relative_error(run_onnx(tmp_path / "f.onnx", x), forward(model, x)) < RTOL


class Elementwise(nn.Module):
    """The elementwise, reduction and matrix ops as functions: exp, sqrt, log, pow, sub, div,
    softmax, log_softmax, transpose, mean (sum then divide), sum, matmul with a constant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, rng=0)
        self.mix = mc.tensor(np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32))

    def forward(self, x):
        h = self.conv(x)
        a = ops.exp(h * 0.1) - 1.0
        b = ops.sqrt(ops.relu(h) + 1.0) / 2.0
        c = ops.log(b + 1.0) ** 2
        s = ops.softmax(h, axis=1) + ops.log_softmax(h, axis=1)
        m = ops.mean(a + c + ops.transpose(s, (0, 1, 3, 2)), axis=(2, 3))     # (N, 4)
        return ops.matmul(m, self.mix) - ops.sum(m, axis=1, keepdims=True)


def test_elementwise_reduction_and_matrix_ops_export(tmp_path):
    model, x = Elementwise(), images(3, size=16)
    proto = mc.io.export_onnx(model, x[:1], tmp_path / "e.onnx")
    assert {"Exp", "Sqrt", "Log", "Pow", "Sub", "Div", "Softmax", "LogSoftmax", "Transpose",
            "ReduceSum", "MatMul"} <= {n.op_type for n in proto.graph.node}
    assert relative_error(run_onnx(tmp_path / "e.onnx", x), forward(model, x)) < RTOL


# ------------------------------------------------------------- errors say where

class Cube(Function):
    """An op no exporter knows: y = x³."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        return (3 * g * ctx.x * ctx.x,)


class CubeLayer(nn.Module):
    def forward(self, x):
        return Cube.apply(x)


class AfterConv(nn.Module):
    """conv -> a functional op -> pool: the op belongs to this forward, between the two."""

    def __init__(self):
        super().__init__()
        self.conv, self.mp = nn.Conv2d(1, 2, 3, rng=0), nn.MaxPool2d(2)

    def forward(self, x):
        return self.mp(Cube.apply(self.conv(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 2, 1, rng=0), nn.Conv2d(2, 2, 1, rng=1)

    def forward(self, x):
        return self.b(Cube.apply(self.a(x)))


def export_error(model, tmp_path, c=1):
    with pytest.raises(NotImplementedError) as err:
        mc.io.export_onnx(model, np.ones((1, c, 8, 8), np.float32), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    assert list(tmp_path.iterdir()) == []                 # no temporary file left either
    return str(err.value)


def test_an_op_in_a_forward_is_placed_between_its_neighbour_layers(tmp_path):
    """Not at the next layer (the pool): in AfterConv's forward, after conv, before mp."""
    text = export_error(AfterConv(), tmp_path)
    assert "the forward of AfterConv (after layer 'conv', before layer 'mp')" in text
    assert "op Cube has no ONNX export" in text


def test_an_op_that_is_a_layers_output_names_that_layer(tmp_path):
    text = export_error(nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), CubeLayer(), nn.ReLU()), tmp_path)
    assert "layer '1' (CubeLayer): op Cube has no ONNX export" in text


def test_an_op_inside_a_nested_block_names_the_block(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Sequential(Block()), nn.ReLU())
    text = export_error(model, tmp_path)
    assert "the forward of layer '1.0' (Block) (after layer '1.0.a', before layer '1.0.b')" in text


def test_an_op_after_a_shared_layer_is_named_by_its_own_place(tmp_path):
    """A ReLU used twice: the op sits after its second call, in the root's forward."""
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.relu = nn.Conv2d(1, 2, 3, rng=0), nn.ReLU()
            self.conv2 = nn.Conv2d(2, 2, 1, rng=1)

        def forward(self, x):
            return self.conv2(Cube.apply(self.relu(self.relu(self.conv(x)))))
    text = export_error(Shared(), tmp_path)
    assert "the forward of Shared (after layer 'relu', before layer 'conv2')" in text


# ------------------------------------------------------------- opsets, dtypes, paths

@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets_in_range_run_with_the_ir_version_of_onnxs_table(opset, tmp_path):
    model, x = TutorialNet(), images(2)
    proto = mc.io.export_onnx(model, x[:1], tmp_path / "t.onnx", opset=opset)
    table = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    assert proto.opset_import[0].version == opset and proto.ir_version == table
    assert opset != 21 or proto.ir_version == 10
    assert relative_error(run_onnx(tmp_path / "t.onnx", x), forward(model, x)) < RTOL


@pytest.mark.parametrize("opset", [9, 12, 10_000, "17"])
def test_an_opset_out_of_range_is_refused_before_any_work(opset, tmp_path):
    with pytest.raises(ValueError, match=r"opset=.* is not supported: give one of 13\.\.\d+"):
        mc.io.export_onnx(TutorialNet(), images(1), tmp_path / "t.onnx", opset=opset)
    assert not (tmp_path / "t.onnx").exists()


def test_a_float64_example_is_converted_to_the_models_float32(tmp_path):
    """Not onnx's "W has inconsistent type": the graph's input is float32 like the weights."""
    model, x = TutorialNet(), images(2)
    proto = mc.io.export_onnx(model, x[:1].astype(np.float64), tmp_path / "t.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert relative_error(run_onnx(tmp_path / "t.onnx", x), forward(model, x)) < RTOL


def test_an_integer_example_is_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match="example_input must be a float array.*int64"):
        mc.io.export_onnx(TutorialNet(), np.zeros((1, 3, 32, 32), np.int64), tmp_path / "t.onnx")


def test_a_missing_output_folder_is_named_before_any_work(tmp_path):
    target = tmp_path / "no" / "such" / "t.onnx"
    with pytest.raises(FileNotFoundError, match=f"its folder {tmp_path / 'no' / 'such'} does "
                                                "not exist"):
        mc.io.export_onnx(TutorialNet(), images(1), target)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        mc.io.export_onnx(TutorialNet(), images(1), tmp_path)


# ------------------------------------------------------------------- metadata

def test_metadata_props_carry_architecture_labels_and_preprocessing(tmp_path):
    """Read back by read_metadata, and turned into the Preprocess that prepares images."""
    model = mc.models.fashion_net(pretrained=True)
    proto = mc.io.export_onnx(model, np.zeros((1, 1, 28, 28), np.float32), tmp_path / "f.onnx")
    assert {p.key for p in proto.metadata_props} == {"architecture", "labels", "preprocessing"}
    meta = mc.io.read_metadata(tmp_path / "f.onnx")
    assert meta["architecture"] == "fashion_net"
    assert meta["labels"] == model.labels and len(meta["labels"]) == 10
    pre = mc.data.Preprocess.from_dict(meta["preprocessing"])
    assert pre == model.preprocess


def test_segmentation_output_is_one_score_per_class_and_pixel_at_any_batch(tmp_path):
    """Exported at batch 1, run at batch 5: (5, 11, H, W), the argmax map equal to minicnn's."""
    model = mc.models.get_model("segnet", pretrained=True)
    x = images(5, c=1, size=48, seed=3)
    mc.io.export_onnx(model, x[:1], tmp_path / "s.onnx")
    got, ref = run_onnx(tmp_path / "s.onnx", x), forward(model, x)
    assert got.shape == (5, 11, 48, 48)
    assert relative_error(got, ref) < RTOL
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-3 * np.abs(ref).max()      # pixels with no near-tie
    assert np.array_equal(got.argmax(1)[clear], ref.argmax(1)[clear]) and clear.mean() > 0.9


# ------------------------------------------------------------- any input size

@pytest.mark.parametrize("name", ["segnet", "unet"])
def test_dynamic_size_runs_the_encoder_decoders_at_another_size(name, tmp_path):
    """Exported at 32×32, run at 48×80 and batch 2: same per-pixel scores as minicnn there
    (MaxUnpool's output shape is read from the pooled tensor, not baked in)."""
    model = mc.models.get_model(name, pretrained=True)
    proto = mc.io.export_onnx(model, images(1, c=1), tmp_path / "s.onnx", dynamic_size=True)
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", "", "H", "W"]
    x = np.random.default_rng(5).standard_normal((2, 1, 48, 80)).astype(np.float32)
    got = run_onnx(tmp_path / "s.onnx", x)
    assert got.shape == (2, 11, 48, 80)
    assert relative_error(got, forward(model, x)) < RTOL


@pytest.mark.parametrize("name, size, where, why", [
    ("fashion_net", 28, "the forward of SmallVGG (after layer 'features', before layer "
                        "'classifier.0')", "op Reshape flattens a 7×7 map into 1568 features"),
    ("efficientnet_lite0", 64, "the forward of EfficientNetLite (before layer '_conv_stem') "
                               "or of layer '_conv_stem' (Conv2dSame)", "op Pad pads by"),
])
def test_dynamic_size_is_refused_where_an_op_bakes_the_size_in(name, size, where, why,
                                                               tmp_path):
    model = mc.models.get_model(name)
    c = 1 if name == "fashion_net" else 3
    with pytest.raises(NotImplementedError) as err:
        mc.io.export_onnx(model, images(1, c=c, size=size), tmp_path / "x.onnx",
                          dynamic_size=True)
    assert where in str(err.value) and why in str(err.value), str(err.value)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("name, unpools", [("segnet", 3), ("segnet_transposed", 0), ("unet", 0)])
def test_pool_indices_appear_only_where_a_decoder_unpools(name, unpools, tmp_path):
    """The encoders keep their argmax for any decoder; the graph computes it only for SegNet's."""
    model = mc.models.get_model(name, pretrained=True)
    proto = mc.io.export_onnx(model, images(1, c=1), tmp_path / "s.onnx")
    pools = [n for n in proto.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 3
    assert sum(len(n.output) == 2 for n in pools) == unpools
    assert sum(n.op_type == "MaxUnpool" for n in proto.graph.node) == unpools
