"""The explorer's web server: a Flask app whose routes are thin calls into ``compute``/``units``.

    app = create_app(build("fashion_net"))       # the app, e.g. for Flask's test client
    serve("fashion_net", port=8000)              # what ``minicnn explore`` runs

Routes (JSON unless noted; a bad request answers 400 with {"error": message}, an input no
longer kept 410 with {"error": message, "gone": true}, and the server keeps serving). Each
tab sends its session id in the header X-Minicnn-Session (or a ``session`` parameter;
"default" without one): inputs are kept per tab.

    GET  /                       the page (static/index.html, app.js, style.css)
    GET  /api/info               model, layers, classes, samples, ReLU rules, methods
    GET  /api/progress           how far the top-9 pass is
    POST /api/input              {"sample": k} | a file field "image" | an image body (webcam
                                 frame) -> input id, top-5, every layer's activation mosaic
    GET  /api/unit               input, layer, unit, rule -> activation map + projection
    GET  /api/top                layer, unit[, rule] -> top-9 dataset patches (or the progress so
                                 far) and, with a rule, the unit's projection on each
    GET  /api/arithmetic         input, layer, unit[, i, j][, target, rule] -> how the unit's
                                 number is computed (conv, max-pool, linear; at its strongest
                                 position by default) and, with a target class, its backward;
                                 ``layer`` may be one inside a block (``_blocks.0._depthwise_conv``)
    GET  /api/arithmetic/layers  input, layer -> the conv / pool / linear layers whose arithmetic
                                 explains that shown layer's units (itself, those inside a block,
                                 the conv before a batch norm or ReLU)
    GET  /api/neuron             layer, unit -> the unit's optimized image
    GET  /api/class              input, target, method -> saliency / smoothgrad / gradcam / occlusion
    GET  /api/weights            every layer's weights; GET /api/gradients input, target
    GET  /api/train              the Train tab: the run's curves and pictures (``version``: the
                                 pictures only when newer), the networks that can train here
    POST /api/train              {"action": "start" | "pause" | "reset" | "save", "network",
                                 "lr", "batch_size"} -> the same
"""
import copy
import sys

from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from .compute import METHODS, RULES, Explorer, ExploreError, decode_image, limit_blas_threads
from .neuron import arithmetic, arithmetic_layers, backward_arithmetic, strongest
from .sessions import InputGone, check_session
from .train import Trainer
from .units import NeuronImages, TopImages, gather_dataset

__all__ = ["create_app", "build", "serve", "MAX_UPLOAD"]

MAX_UPLOAD = 32 * 1024 * 1024        # bytes of one request body


def build(model="fashion_net", images=None, backend="numpy", installed=True, start=True,
          weights=None):
    """An Explorer for a model (a name, or a pretrained Module named by its ``arch``) with its
    top-9 table started (or loaded from the cache); ``start=False`` leaves it to the caller.
    ``weights``: a weight file for the named model instead of its pretrained weights (e.g. a
    run saved by the Train tab)."""
    from .. import models
    from ..models.pretrained import load_pretrained
    if isinstance(model, str) and ":" in model:
        model = user_model(model)
    if not isinstance(model, str):
        net = model
    elif weights is not None:
        net = load_pretrained(models.get_model(model, pretrained=False), weights).eval()
    else:
        net = models.get_model(model, pretrained=True)
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


def user_model(spec):
    """``"module:function"`` -> the Module that ``function()`` of the importable ``module``
    returns (the current folder is searched too): a network a student defines in a few lines.
    It needs a ``preprocess`` (``minicnn.data.images.Preprocess`` with its input_size)."""
    import importlib
    import os
    from .. import nn
    module, _, fn = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        make = getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--model {spec}: cannot import {fn!r} from {module!r} ({err})") from None
    net = make()
    if not isinstance(net, nn.Module):
        raise ValueError(f"--model {spec}: {fn}() returned a {type(net).__name__}, not an "
                         f"nn.Module")
    pre = getattr(net, "preprocess", None)
    if pre is None or not pre.input_size:
        raise ValueError(f"--model {spec}: the network needs a preprocess with an input size, "
                         f"e.g. net.preprocess = minicnn.models.small.FASHION_PREPROCESS "
                         f"(28×28 grey)")
    net.arch = getattr(net, "arch", None) or fn
    return net.eval()


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


def _session():
    sid = request.headers.get("X-Minicnn-Session") or request.values.get("session", "default")
    try:
        return check_session(sid)
    except ValueError as err:
        raise ExploreError(str(err)) from None


def _input(ex):
    """The input named by the request's ``input`` parameter, in the request's session."""
    return ex.get_input(_str("input"), _session())


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


def create_app(ex, trainer=None):
    """The Flask app serving one Explorer ``ex`` (built by ``build``) and the Train tab's
    ``trainer`` (a new ``train.Trainer`` by default)."""
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    trainer = trainer or Trainer()
    app.trainer = trainer
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD

    @app.after_request
    def no_store(response):
        # every answer depends on the server's state (inputs kept, training run): never
        # cached, not even a 410, which browsers would otherwise keep and replay
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(ExploreError)
    def bad_request(err):
        return jsonify(error=str(err)), 400

    @app.errorhandler(InputGone)
    def gone(err):
        return jsonify(error=str(err), gone=True), 410

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
        return jsonify(model=ex.name, layers=[ex.layer_info(n) for n in ex.layers],
                       labels=ex.labels, classes=ex.classes, size=list(ex.size),
                       channels=ex.pre.channels, samples=[png_url(p) for p in ex.samples],
                       rules=list(RULES), default_rule=ex.default_rule,
                       rule_notes=ex.rule_notes, methods=list(METHODS),
                       top=ex.top_images.status())

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
        return jsonify(ex.view(_user_image(who, ex.add_input, img, _session())))

    @app.get("/api/unit")
    def unit():
        inp = _input(ex)
        return jsonify(ex.unit(inp, _str("layer"), _int("unit"), _str("rule", ex.default_rule)))

    @app.get("/api/top")
    def top():
        rule = request.values.get("rule")
        if rule is not None and rule not in RULES:
            raise ExploreError(f"rule {rule!r} is not a ReLU backward rule; choose one of "
                               f"{', '.join(RULES)}")
        found = ex.top_images.top(_str("layer"), _int("unit"), rule)
        return jsonify(status=ex.top_images.status(), rule=rule,
                       images=None if found is None else [u for u, _, _ in found],
                       indices=None if found is None else [i for _, i, _ in found],
                       projections=None if found is None or rule is None
                       else [p for _, _, p in found])

    @app.get("/api/arithmetic")
    def unit_arithmetic():
        inp = _input(ex)
        layer, unit = _str("layer"), _int("unit")
        if layer in ex.layers:
            ex.check_unit(layer, unit)
        elif layer not in ex.model.layer_names():  # a layer inside a block: checked below
            raise ExploreError(f"layer {layer!r} is not in the model; layers: "
                               f"{', '.join(ex.layers)}")
        i, j = request.values.get("i"), request.values.get("j")
        if i is None or j is None:          # at the unit's strongest position
            if layer in ex.layers:
                i, j = ex.strongest(inp, layer, unit)
            else:
                with ex.lock:
                    i, j = strongest(ex.model, inp.x, layer, unit)
        else:
            i, j = _int("i"), _int("j")
        target = request.values.get("target")
        rule = _str("rule", ex.default_rule)
        if rule not in RULES:
            raise ExploreError(f"rule {rule!r} is not a ReLU backward rule; choose one of "
                               f"{', '.join(RULES)}")
        try:
            with ex.lock:
                out = arithmetic(ex.model, inp.x, layer, unit, i, j, pictures=True)
                if target is not None:
                    out["backward"] = backward_arithmetic(ex.model, inp.x, layer, unit, i, j,
                                                          ex.check_target(_int("target")), rule,
                                                          fwd=out)
            return jsonify(out)
        except ValueError as err:
            raise ExploreError(str(err)) from None

    @app.get("/api/arithmetic/layers")
    def unit_arithmetic_layers():
        inp = _input(ex)
        layer = _str("layer")
        if layer not in ex.layers:
            raise ExploreError(f"layer {layer!r} is not shown; layers: {', '.join(ex.layers)}")
        with ex.lock:
            return jsonify(layers=arithmetic_layers(ex.model, inp.x, layer))

    @app.get("/api/neuron")
    def neuron():
        return jsonify(image=ex.neurons.image(_str("layer"), _int("unit")))

    @app.get("/api/class")
    def class_map():
        inp = _input(ex)
        return jsonify(ex.class_map(inp, _int("target"), _str("method")))

    @app.get("/api/weights")
    def weights():
        return jsonify(layers=ex.weights())

    @app.get("/api/gradients")
    def gradients():
        return jsonify(ex.gradients(_input(ex), _int("target")))

    @app.get("/api/train")
    def train_state():
        since = request.values.get("version", "-1")
        try:
            since = int(since)
        except ValueError:
            raise ExploreError(f"parameter 'version' must be an integer, got {since!r}") from None
        return jsonify(networks=trainer.available(), **trainer.snapshot(since))

    @app.post("/api/train")
    def train_control():
        try:
            body = request.get_json(silent=True)
        except RecursionError:                      # JSON nested past the parser's depth
            body = None
        if not isinstance(body, dict):
            raise ExploreError('POST /api/train needs JSON {"action": "start" | "pause" | '
                               '"reset" | "save", ...}')
        action, network = body.get("action"), body.get("network")
        lr, batch = body.get("lr"), body.get("batch_size")
        saved = None
        if action == "start":
            trainer.start(network, lr=lr, batch_size=batch)
        elif action == "pause":
            trainer.pause()
        elif action == "reset":
            trainer.reset(network)
            trainer.configure(lr, batch)
        elif action == "save":
            saved = str(trainer.save())
        elif action == "configure":
            trainer.configure(lr, batch)
        else:
            raise ExploreError(f"action {action!r} is not known; choose start, pause, reset, "
                               f"save or configure")
        return jsonify(networks=trainer.available(), saved_path=saved, **trainer.snapshot())

    return app


def serve(model="fashion_net", port=8000, images=None, host="127.0.0.1", backend="numpy",
          weights=None):
    """Build the explorer, print its address, serve until Ctrl-C. port 0: a free port."""
    from werkzeug.serving import make_server
    limit_blas_threads()           # one BLAS thread: faster beside the server's other work
    ex = build(model, images, backend, weights=weights)
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
