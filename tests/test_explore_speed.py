"""How ``minicnn explore`` keeps "Explain" and a click fast, each shortcut checked against the
technique it stands for (no browser needed; the timings themselves are printed by
``python -m minicnn.explore.bench``, never asserted here)."""
import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_THREADS = """
import json
from threadpoolctl import threadpool_info
from minicnn.explore.compute import limit_blas_threads
before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
now = limit_blas_threads()
after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
print(json.dumps({"before": before, "now": now, "after": after}))
"""


def _blas_threads(**env):
    """limit_blas_threads() in a fresh interpreter (the setting is per process) with the
    BLAS thread variables of ``env`` only."""
    pytest.importorskip("threadpoolctl", reason="pip install threadpoolctl")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    clean.update(env, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _THREADS], env=clean, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if not r["before"]:
        pytest.skip("threadpoolctl finds no BLAS library in NumPy")
    return r


def test_the_server_runs_blas_on_one_thread_unless_the_environment_names_a_count():
    """Many computations run side by side in the server; a multi-threaded BLAS slowed
    "Explain" threefold on two loaded cores. A count the user set in the environment wins."""
    r = _blas_threads()
    assert r["now"] == 1 and set(r["after"]) == {1}
    r = _blas_threads(OPENBLAS_NUM_THREADS="2")
    assert r["after"] == r["before"] and r["now"] == max(r["before"])


# ------------------------------------------------------------- one pass for three views
@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    from minicnn.explore import build
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        yield build("fashion_net", installed=False, start=False)


def test_saliency_gradcam_and_the_gradients_view_share_one_pass_and_equal_the_techniques(
        fashion, monkeypatch):
    """The three views of one "Explain" that differentiate the class score with the standard
    rule read one forward and backward pass, and each is still its technique: saliency and
    Grad-CAM equal ``saliency`` and ``grad_cam`` run on their own, the gradients view equals
    a capture of the layer's gradient. A new class or a new input is a new pass."""
    from minicnn.explore import compute
    from minicnn.techniques.gradcam import grad_cam
    from minicnn.techniques.gradients import saliency
    import minicnn as mc
    passes = []
    real = compute.backward_from_target
    monkeypatch.setattr(compute, "backward_from_target",
                        lambda *a, **k: passes.append(1) or real(*a, **k))
    inp = fashion.add_input(fashion.samples[4])
    sal, _ = fashion.class_array(inp, 4, "saliency")
    cam, _ = fashion.class_array(inp, 4, "gradcam")
    grads = fashion.gradients(inp, 4)
    assert len(passes) == 1
    np.testing.assert_allclose(sal, saliency(fashion.model, inp.x, 4), rtol=1e-6, atol=0)
    ref = grad_cam(fashion.model, inp.x, 4)
    assert ref.max() > 0
    np.testing.assert_allclose(cam, ref, rtol=1e-5, atol=1e-6 * ref.max())
    layer = "features.3"
    with mc.capture(fashion.model, [layer]) as acts:
        logits = fashion.model(mc.tensor(inp.x[None]))
    logits[0, 4].backward()
    norm = float(np.linalg.norm(acts[layer].grad[0]))
    shown = {g["name"]: g["norm"] for g in grads["layers"]}
    assert shown[layer] == pytest.approx(norm, rel=1e-5)
    fashion.class_array(inp, 7, "saliency")                  # another class
    fashion.gradients(fashion.add_input(fashion.samples[4]), 7)   # another input
    assert len(passes) == 3


def test_class_maps_say_their_settings_in_the_caption(fashion):
    inp = fashion.add_input(fashion.samples[0])
    r = fashion.class_map(inp, 0, "smoothgrad")
    assert r["caption"] == "SmoothGrad: mean |∂y/∂x| over 16 noisy copies"
    r = fashion.class_map(inp, 0, "occlusion")
    assert r["caption"] == "occlusion: share of p lost (8×8 places of a grey 7-px patch)"


# ---------------------------------------------- EfficientNet-Lite0: few copies, few patches
@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory):
    from minicnn.explore import build
    from minicnn.models import pretrained
    try:
        pretrained.find_weights("efficientnet_lite0")
    except (FileNotFoundError, KeyError, ValueError) as err:
        pytest.skip(f"EfficientNet-Lite0 weights are not installed: {err}")
    with pytest.MonkeyPatch.context() as mp, _server_threads():
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        yield build("efficientnet_lite0", installed=False, start=False)


def _server_threads():
    """BLAS on one thread for the block, as the server runs (with two threads on two busy
    cores these tests took 64 s instead of 9; their results hold on any thread count)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _photo(explorer, name):
    samples = pytest.importorskip("minicnn.data.samples")
    try:
        pixels = samples.sample_photo(name, 224)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    inp = explorer.add_input(pixels)
    explorer.view(inp)
    return inp, int(np.argmax(inp.logits)), samples.photo_box(name, 224)


def _blocks(m, k=16):
    """Means over k×k blocks: the scale at which a map is read, without the pixel speckle."""
    h, w = m.shape
    return m.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def test_efficientnet_smoothgrad_of_4_copies_is_already_smooth(efficientnet):
    """4 noisy copies (the explorer's setting) agree with 12 others at the scale of 16-pixel
    blocks (r = 0.96-0.97 on the cup, 0.86-0.88 on the cat, two seeds of the 12) where one
    gradient, saliency, does not (0.26-0.29, -0.11 to -0.20): few copies, still SmoothGrad."""
    from minicnn.techniques.gradients import smoothgrad
    (options, caption) = efficientnet.explain_settings()["smoothgrad"]
    assert options["n_samples"] == 4 and "4 noisy copies" in caption
    for name in ("coffee", "chelsea"):
        inp, t, _ = _photo(efficientnet, name)
        ref = np.abs(smoothgrad(efficientnet.model, inp.x, t, n_samples=12, batch_size=1,
                                seed=7, kind="magnitude")).max(axis=0)
        ours = efficientnet.class_array(inp, t, "smoothgrad")[0]
        one = efficientnet.class_array(inp, t, "saliency")[0]
        r_ours, r_one = (float(np.corrcoef(_blocks(m).ravel(), _blocks(ref).ravel())[0, 1])
                         for m in (ours, one))
        assert r_ours >= 0.7 and r_ours > r_one + 0.4, (name, r_ours, r_one)


def test_efficientnet_occlusion_with_3x3_patches_finds_the_cup(efficientnet):
    """3×3 patches of 76 pixels on the espresso photo: the patch that costs p(espresso) most
    lies on the cup, and 77% of the map's loss is inside the cup's box (42% of the image)."""
    from minicnn.techniques.common import mass_in_box
    inp, t, box = _photo(efficientnet, "coffee")
    m, caption = efficientnet.class_array(inp, t, "occlusion")
    assert caption == "occlusion: share of p lost (3×3 places of a grey 76-px patch)"
    top, left, bottom, right = box
    i, j = np.argwhere(m == m.max()).mean(axis=0)              # the costliest patch's centre
    assert top <= i < bottom and left <= j < right and m.max() > 0.1
    assert mass_in_box(np.clip(m, 0, None), box) >= 0.6


def test_a_net_without_a_gradcam_layer_gets_a_clear_error_and_its_other_maps():
    """A student's own network without ``default_cam_layer``: Grad-CAM is a 400 naming what
    is missing; saliency (from the same shared pass) and the gradients view still work."""
    import minicnn as mc
    from minicnn.explore.compute import Explorer, ExploreError
    from minicnn.models.small import FASHION_PREPROCESS
    net = mc.nn.Sequential(mc.nn.Conv2d(1, 4, 3, padding=1), mc.nn.ReLU(), mc.nn.Flatten(),
                           mc.nn.Linear(4 * 28 * 28, 10))
    net.preprocess = FASHION_PREPROCESS
    ex = Explorer(net, "tiny")
    inp = ex.add_input(np.full((28, 28), 100, np.uint8))
    with pytest.raises(ExploreError, match="default_cam_layer"):
        ex.class_array(inp, 3, "gradcam")
    sal, _ = ex.class_array(inp, 3, "saliency")
    assert sal.shape == (28, 28) and np.all(np.isfinite(sal))
    assert [g["name"] for g in ex.gradients(inp, 3)["layers"]][-1] == "3"
