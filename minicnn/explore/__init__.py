"""``minicnn explore``: a network live in the browser (Yosinski's DeepVis toolbox, ConvNetJS).

One page: pick a sample, upload a photo or turn on the webcam; see the top-5 and every
layer's activations; click a unit for its activation map, its projection to pixels under
a chosen ReLU backward rule, its top-9 dataset patches and its optimized image; pick a
class for saliency, SmoothGrad, Grad-CAM and occlusion; see each layer's weights and the
gradient of a class score at each layer.

    compute.py   Explorer: each answer of the page is a call to a technique
    units.py     top-9 images (precomputed once per model, cached) and neuron images
    render.py    arrays -> PNG data URLs, activation mosaics, heat overlays
    server.py    the Flask app (create_app) and serve(); static/ the page itself
    bench.py     click-to-projection latency and webcam frames per second
"""
from .compute import Explorer, ExploreError
from .server import build, create_app, serve

__all__ = ["Explorer", "ExploreError", "build", "create_app", "serve"]
