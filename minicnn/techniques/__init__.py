"""Visualization and analysis techniques: plain functions over (model, image, target, layer).

One module per technique family; every function takes the model and its inputs
and returns arrays. Plotting lives in ``minicnn.plot``. The modules stay
importable by name (``from minicnn.techniques.deconvnet import deconvnet_projection``).
"""
from .common import as_input, check_target, frozen, unit_score  # noqa: F401
# gradient-based visualization (Simonyan 2014; Zeiler & Fergus 2014; Springenberg 2015;
# Selvaraju 2017; Luo 2016)
from .gradients import (input_gradient, saliency, smoothgrad, integrated_gradients,  # noqa: F401
                        neuron_gradient, guided_backprop)
from .deconvnet import deconvnet, deconvnet_projection  # noqa: F401
from .gradcam import grad_cam, guided_grad_cam, bilinear_resize  # noqa: F401
from .occlusion import occlusion  # noqa: F401
from .receptive_field import effective_receptive_field  # noqa: F401
from .grabcut import saliency_segmentation, graph_cut, iou  # noqa: F401
# optimizing the image (Simonyan 2014; Yosinski 2015; Mahendran & Vedaldi 2015;
# Mordvintsev 2015; Gatys 2015/2016)
from .optimize import ascend  # noqa: F401
from .class_vis import class_visualization, ascend_class  # noqa: F401
from .inversion import invert, invert_layers  # noqa: F401
from .deepdream import deepdream  # noqa: F401
from .style import style_transfer, texture_synthesis  # noqa: F401
# representations (van der Maaten & Hinton 2008)
from .filters import filter_images, activation_grids  # noqa: F401
from .receptive_field import receptive_field  # noqa: F401
from .top_activations import top_activations, top_patches  # noqa: F401
from .neighbors import extract_features, nearest_neighbors  # noqa: F401
from .embedding import pca, trustworthiness, grid_assignment  # noqa: F401
from .tsne import tsne  # noqa: F401
# adversarial examples and robustness (Szegedy 2014; Goodfellow 2015; Nguyen 2015;
# Kurakin 2017; Madry 2018; Su 2019; Hendrycks & Dietterich 2019; Geirhos 2019)
from .adversarial import (linear_example, required_eps, fgsm, pgd, bim,  # noqa: F401
                          fooling_image, fooling_from_noise, mix_templates, mixing_alpha,
                          distortion)
from .one_pixel import one_pixel_attack, one_pixel_success_rate  # noqa: F401
from .adv_training import adversarial_fit, robust_accuracy, robustness  # noqa: F401
from .corruptions import (CORRUPTIONS, corrupt, corruption_accuracy,  # noqa: F401
                          mean_corruption_error)
from .shape_texture import cue_conflict_images, shape_bias  # noqa: F401
# image-to-image (Long, Shelhamer & Darrell 2015)
from .convolutionalize import convolutionalize, score_maps  # noqa: F401
