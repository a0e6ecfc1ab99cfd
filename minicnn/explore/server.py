"""The explorer's web server: a Flask app whose routes are thin calls into ``compute``/``units``.

    app = create_app(build("fashion_net"))       # the app, e.g. for Flask's test client
    serve("fashion_net", port=8000)              # what ``minicnn explore`` runs

Routes (JSON unless noted; a bad request answers 400 with {"error": message}, and the
server keeps serving):

    GET  /                       the page (static/index.html, app.js, style.css)
    GET  /api/info               model, layers, classes, samples, ReLU rules, methods
    GET  /api/progress           how far the top-9 pass is
    POST /api/input              {"sample": k} | a file field "image" | an image body (webcam
                                 frame) -> input id, top-5, every layer's activation mosaic
    GET  /api/unit               input, layer, unit, rule -> activation map + projection
    GET  /api/top                layer, unit -> top-9 dataset patches (or the progress so far)
    GET  /api/neuron             layer, unit -> the unit's optimized image
    GET  /api/class              input, target, method -> saliency / smoothgrad / gradcam / occlusion
    GET  /api/weights            every layer's weights; GET /api/gradients input, target
"""
import copy
import sys

from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from .compute import METHODS, RULES, Explorer, ExploreError, decode_image
from .units import NeuronImages, TopImages, gather_dataset

__all__ = ["create_app", "build", "serve", "MAX_UPLOAD"]

MAX_UPLOAD = 32 * 1024 * 1024        # bytes of one request body


def build(model="fashion_net", images=None, backend="numpy", installed=True, start=True):
    """An Explorer for a model (a name, or a pretrained Module named by its ``arch``) with its
    top-9 table started (or loaded from the cache); ``start=False`` leaves it to the caller."""
    from .. import models
    net = models.get_model(model, pretrained=True) if isinstance(model, str) else model
    if backend != "numpy":
        net.to(backend)
    ex = Explorer(net, model if isinstance(model, str) else getattr(net, "arch", "model"))
    pixels, sources = gather_dataset(ex, images, installed=installed)
    ex.top_images = TopImages(ex, copy.deepcopy(net), pixels, sources)
    ex.neurons = NeuronImages(ex)
    ex.samples = [ex.fit(p) for p in pixels[:min(len(pixels), 12)]]
    if start:
        ex.top_images.start()
    return ex


def _int(name):
    value = request.values.get(name)
    if value is None:
        raise ExploreError(f"missing parameter {name!r}")
    try:
        return int(value)
    except ValueError:
        raise ExploreError(f"parameter {name!r} must be an integer, got {value!r}") from None


def _str(name, default=None):
    value = request.values.get(name, default)
    if value is None:
        raise ExploreError(f"missing parameter {name!r}")
    return value


def _json_object():
    """The request's JSON body as a dict; anything else (an array, a string, JSON nested
    past what the parser can follow, broken JSON) is a 400 saying what was expected."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise ExploreError("the JSON body is nested too deeply; send {\"sample\": k}") from None
    if not isinstance(body, dict):
        raise ExploreError(f"the JSON body must be an object such as {{\"sample\": 0}}, got "
                           f"{brief_json(body)}")
    return body


def brief_json(value):
    """A JSON value named in a message without printing it whole."""
    if isinstance(value, (list, dict, str)):
        return f"a JSON {type(value).__name__.replace('dict', 'object')} of {len(value)} items" \
            if not isinstance(value, str) else f"the string {value[:40]!r}"
    return repr(value)


def _user_image(who, fn, *args, **kwargs):
    """``fn(*args)`` on an image the user sent: an image it cannot take (a colour space
    Pillow cannot convert, a 1×60 strip, ...) is a 400 naming it, not a server error."""
    try:
        return fn(*args, **kwargs)
    except ExploreError:
        raise
    except ValueError as err:
        raise ExploreError(f"{who}: cannot be used ({str(err)[:300]})") from None


def create_app(ex):
    """The Flask app serving one Explorer ``ex`` (built by ``build``)."""
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD

    @app.errorhandler(ExploreError)
    def bad_request(err):
        return jsonify(error=str(err)), 400

    @app.errorhandler(HTTPException)
    def http_error(err):
        msg = err.description
        if err.code == 413:
            msg = f"the upload is larger than {MAX_UPLOAD // 2**20} MB"
        return jsonify(error=f"{err.code} {err.name}: {msg}"), err.code

    @app.errorhandler(Exception)
    def server_error(err):             # a bug shows on the page instead of a broken connection
        print(f"minicnn explore: {type(err).__name__}: {err}", file=sys.stderr)
        return jsonify(error=f"server error: {type(err).__name__}: {err}"), 500

    @app.get("/")
    def index():
        return send_from_directory(app.static_folder, "index.html")

    @app.get("/api/info")
    def info():
        from .render import png_url
        return jsonify(model=ex.name, layers=[{"name": n, "shape": list(ex.shapes[n])}
                                              for n in ex.layers],
                       labels=ex.labels, size=list(ex.size), channels=ex.pre.channels,
                       samples=[png_url(p) for p in ex.samples], rules=list(RULES),
                       methods=list(METHODS), top=ex.top_images.status())

    @app.get("/api/progress")
    def progress():
        return jsonify(ex.top_images.status())

    @app.post("/api/input")
    def new_input():
        if "image" in request.files:
            f = request.files["image"]
            who = f"upload '{str(f.filename)[:100]}'"
            img = _user_image(who, decode_image, f.read(), ex.mode, name=who)
        elif request.is_json:
            k, who = _json_object().get("sample"), "the sample"
            if not isinstance(k, int) or not 0 <= k < len(ex.samples):
                raise ExploreError(f"sample {brief_json(k)} does not exist: there are "
                                   f"{len(ex.samples)} samples, 0..{len(ex.samples) - 1}")
            img = ex.samples[k]
        else:
            data = request.get_data()
            if not data:
                raise ExploreError("POST /api/input needs {\"sample\": k}, a file field 'image' "
                                   "or an image as the request body")
            who = "frame"
            img = _user_image(who, decode_image, data, ex.mode, name=who)
        return jsonify(ex.view(_user_image(who, ex.add_input, img)))

    @app.get("/api/unit")
    def unit():
        inp = ex.get_input(_str("input"))
        return jsonify(ex.unit(inp, _str("layer"), _int("unit"), _str("rule", "deconvnet")))

    @app.get("/api/top")
    def top():
        found = ex.top_images.top(_str("layer"), _int("unit"))
        return jsonify(status=ex.top_images.status(),
                       images=None if found is None else [u for u, _ in found],
                       indices=None if found is None else [i for _, i in found])

    @app.get("/api/neuron")
    def neuron():
        return jsonify(image=ex.neurons.image(_str("layer"), _int("unit")))

    @app.get("/api/class")
    def class_map():
        inp = ex.get_input(_str("input"))
        return jsonify(ex.class_map(inp, _int("target"), _str("method")))

    @app.get("/api/weights")
    def weights():
        return jsonify(layers=ex.weights())

    @app.get("/api/gradients")
    def gradients():
        return jsonify(ex.gradients(ex.get_input(_str("input")), _int("target")))

    return app


def serve(model="fashion_net", port=8000, images=None, host="127.0.0.1", backend="numpy"):
    """Build the explorer, print its address, serve until Ctrl-C. port 0: a free port."""
    from werkzeug.serving import make_server
    ex = build(model, images, backend)
    server = make_server(host, port, create_app(ex), threaded=True)
    print(f"minicnn explore: {model} at http://{host}:{server.server_port}/  "
          f"(top images over {ex.top_images.status()['dataset']}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
