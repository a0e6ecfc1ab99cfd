"""PyTorch twins of minicnn's architectures, for parity tests and benchmarks only.

``torch_model("squeezenet1_1")`` builds the architecture in torch.nn from the source that
``minicnn export --torch-module`` writes, with random weights. torch is loaded
when a function here is called — minicnn itself never needs it.
"""
import importlib

__all__ = ["torch_model", "torch_small_vgg"]


def torch_model(name, device="cpu"):
    """The architecture ``name`` in torch.nn: the very module ``minicnn export --torch-module
    name`` writes (models/torch_source.py), with random weights (seed 0) and BatchNorm
    statistics that are not the identity. Module names are torchvision's / the package's,
    so the state_dict keys match. ``device="meta"`` builds shapes only (no memory, no time)."""
    from ..models.torch_source import torch_module_source
    torch = importlib.import_module("torch")
    namespace = {}
    exec(compile(torch_module_source(name), f"<{name}_torch.py>", "exec"), namespace)
    torch.manual_seed(0)
    with torch.device(device):
        model = namespace["build"]()
    with torch.no_grad():                    # BatchNorm that is not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def torch_small_vgg(model):
    """A torch.nn twin of a minicnn ``SmallVGG`` (fashion_net / cifar_net), weights copied."""
    torch = importlib.import_module("torch")
    tnn = torch.nn
    from ..backend import to_numpy

    def twin(layer):
        kind = type(layer).__name__
        if kind == "Conv2d":
            return tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                              layer.stride, layer.padding)
        if kind == "Linear":
            return tnn.Linear(layer.in_features, layer.out_features)
        if kind == "MaxPool2d":
            return tnn.MaxPool2d(layer.kernel_size, layer.stride)
        if kind == "Dropout":
            return tnn.Dropout(layer.p)
        return tnn.ReLU()

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*[twin(m) for m in model.features])
            self.classifier = tnn.Sequential(*[twin(m) for m in model.classifier])

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    net = Twin()
    net.load_state_dict({k: torch.tensor(to_numpy(v)) for k, v in model.state_dict().items()})
    return net
