"""The explorer's Train tab (Karpathy's ConvNetJS): watch a small network learn, live.

    trainer = Trainer()                        # what the server holds, one for all tabs
    trainer.start("fashion_net", lr=2e-3, batch_size=32)   # a background thread trains
    trainer.snapshot()                         # curves, filters, activations, gradients, mistakes
    trainer.pause(); trainer.start()           # pause and go on; reset() starts from scratch
    trainer.save()                             # the run's weights into cache_dir()/explore/runs/

The network starts from random weights (``fashion_net(pretrained=False)`` or
``cifar_net``), never from or into the shipped weights. Each step is the textbook one (the
same as ``training.loop``): a random mini-batch, forward, cross-entropy, backward, Adam step.
Every ``EVAL_EVERY`` steps the held-out images (a fixed slice of the test set) are
evaluated; about once a second the pictures the page shows are redrawn from the current
weights: the first layer's filters, every layer's activations on one test image, the
gradient of the training loss at every layer (on the batch's first image) and the held-out
images the network gets wrong right now.
"""
import contextlib
import threading
import time
from pathlib import Path

import numpy as np

from .. import nn, ops
from ..autograd import Tensor, no_grad
from ..backend import to_numpy
from ..nn import capture, optim
from ..techniques.filters import filter_images, first_conv_layer
from . import render
from .compute import ExploreError, display_layers

__all__ = ["Trainer", "NETWORKS", "EVAL_EVERY", "HELD_OUT"]

EVAL_EVERY = 25           # steps between two held-out evaluations
HELD_OUT = 500            # held-out (test) images evaluated each time
DRAW_EVERY = 1.0          # seconds between two redraws of the pictures
MAX_POINTS = 2000         # points kept per curve (older ones thinned out)
MAX_BATCH = 512


def _data(name, split):
    from ..data import load_fashion_mnist
    from ..data.cifar import load_cifar10
    load = load_fashion_mnist if name == "fashion_net" else load_cifar10
    return load(split, download=False)


NETWORKS = {"fashion_net": "Fashion-MNIST", "cifar_net": "CIFAR-10"}


class Trainer:
    """One training run at a time, in a daemon thread; every method is safe from any thread."""

    def __init__(self, seed=0, held_out=HELD_OUT, eval_every=EVAL_EVERY, draw_every=DRAW_EVERY):
        self.seed, self.held_out = seed, held_out
        self.eval_every, self.draw_every = eval_every, draw_every
        self.lock = threading.Lock()          # the run's state (model, curves, pictures)
        self._thread, self._stop = None, threading.Event()
        self._data = {}
        self.saved, self.status, self.name = [], "ready", "fashion_net"
        self.reset("fashion_net")

    # ------------------------------------------------------------------ controls
    def available(self):
        """{network: dataset name, or why it cannot train here}."""
        out = {}
        for name, dataset in NETWORKS.items():
            try:
                self._dataset(name)
                out[name] = {"dataset": dataset, "ok": True}
            except (FileNotFoundError, OSError, ValueError) as err:
                out[name] = {"dataset": dataset, "ok": False, "why": str(err).splitlines()[0]}
        return out

    def _dataset(self, name):
        if name not in self._data:
            (xtr, ytr), (xte, yte) = _data(name, "train"), _data(name, "test")
            self._data[name] = (xtr, np.asarray(ytr), xte[:self.held_out],
                                np.asarray(yte)[:self.held_out])
        return self._data[name]

    def reset(self, name=None):
        """A fresh network (random weights, seed ``self.seed``), nothing learnt, paused."""
        from .. import models
        name = name or self.name
        if name not in NETWORKS:
            raise ExploreError(f"network {name!r} cannot be trained here; choose one of "
                               f"{', '.join(NETWORKS)}")
        self.pause()
        with self.lock:
            self.name = name
            self.model = getattr(models, name)(pretrained=False, seed=self.seed)
            self.layers = [n for n in display_layers(self.model)
                           if not isinstance(self.model.get_submodule(n), nn.Dropout)]
            self.opt = None
            self.lr, self.batch_size = 2e-3, 32
            self.step, self.status, self.error = 0, "ready", None
            self.curves = {"train": {"step": [], "loss": [], "acc": []},
                           "test": {"step": [], "loss": [], "acc": []}}
            self.pictures, self.version = None, 0
            self._grads, self._test_logits = [], None
            self.rng = np.random.default_rng(self.seed)
        return self

    def start(self, name=None, lr=None, batch_size=None):
        """Start (or go on with) training in the background; a new ``name`` starts afresh."""
        if name is not None and name != self.name:
            self.reset(name)
        self.configure(lr, batch_size)
        try:
            self._dataset(self.name)                   # a missing dataset is an error now
        except (OSError, ValueError) as err:
            raise ExploreError(f"{self.name} cannot train here: {err}") from None
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        with self.lock:
            self.status = "running"
        self._thread = threading.Thread(target=self._run, name="explore-train", daemon=True)
        self._thread.start()
        return self

    def configure(self, lr=None, batch_size=None):
        """Change the learning rate or batch size, also while running (the next step uses them)."""
        if lr is not None:
            if not (isinstance(lr, (int, float)) and np.isfinite(lr) and 0 < lr <= 1):
                raise ExploreError(f"learning rate {lr!r} must be a number in (0, 1]")
        if batch_size is not None:
            if not (isinstance(batch_size, int) and 1 <= batch_size <= MAX_BATCH):
                raise ExploreError(f"batch size {batch_size!r} must be an integer in "
                                   f"1..{MAX_BATCH}")
        with self.lock:
            if lr is not None:
                self.lr = float(lr)
                if self.opt is not None:
                    self.opt.lr = self.lr
            if batch_size is not None:
                self.batch_size = batch_size

    def pause(self):
        """Stop after the current step (the weights and curves stay)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self._thread = None
        with self.lock:
            if self.status == "running":
                self.status = "paused"
        return self

    def wait_steps(self, n, timeout=60):
        """Block until at least ``n`` steps are done (tests and the README screenshot)."""
        end = time.monotonic() + timeout
        while self.step < n and time.monotonic() < end and self.error is None:
            time.sleep(0.05)
        return self.step

    # ------------------------------------------------------------------ the loop
    def _run(self):
        xtr, ytr, xte, yte = self._dataset(self.name)
        last_draw = 0.0
        try:
            while not self._stop.is_set():
                with self.lock:
                    if self.opt is None:
                        self.opt = optim.Adam(self.model.parameters(), lr=self.lr)
                    draw = time.monotonic() - last_draw > self.draw_every
                    self._train_step(xtr, ytr, draw)
                    if self.step % self.eval_every == 0 or self.step == 1:
                        self._evaluate(xte, yte)
                    if draw:
                        self._draw(xte, yte)
                        last_draw = time.monotonic()
                time.sleep(0)                          # let the page's requests in
        except Exception as err:                       # shown on the page
            with self.lock:
                self.status, self.error = "error", f"{type(err).__name__}: {err}"

    def _train_step(self, xtr, ytr, draw):
        idx = self.rng.integers(0, len(xtr), self.batch_size)
        x = self.model.preprocess.preprocess(xtr[idx])
        y = ytr[idx]
        self.model.train()
        with (capture(self.model, self.layers) if draw else contextlib.nullcontext({})) as acts:
            logits = self.model(Tensor(x))
            loss = ops.cross_entropy(logits, y)
            self.opt.zero_grad()
            loss.backward()
        value = float(to_numpy(loss.data))
        if not np.isfinite(value):
            raise FloatingPointError(f"the loss is {value} at step {self.step + 1}: the "
                                     f"learning rate {self.lr:g} is too large; reset and lower it")
        self.opt.step()
        self.step += 1
        acc = float((to_numpy(logits.data).argmax(1) == y).mean())
        self._record("train", value, acc)
        if draw:
            self._grads = [(n, to_numpy(acts[n].grad[0])) for n in self.layers
                           if acts[n].grad is not None]

    def _evaluate(self, xte, yte):
        self.model.eval()
        with no_grad():
            logits = self.model(Tensor(self.model.preprocess.preprocess(xte)))
            loss = float(to_numpy(ops.cross_entropy(logits, yte).data))
        probs = to_numpy(logits.data).astype(np.float64)
        self._test_logits = probs
        self._record("test", loss, float((probs.argmax(1) == yte).mean()))

    def _record(self, which, loss, acc):
        c = self.curves[which]
        c["step"].append(self.step)
        c["loss"].append(loss)
        c["acc"].append(acc)
        if len(c["step"]) > MAX_POINTS:                  # keep every other point
            for k in c:
                c[k] = c[k][::2]

    def _draw(self, xte, yte):
        """The pictures of the page from the current weights (under ``self.lock``)."""
        first = first_conv_layer(self.model)
        filters, fgeom = render.mosaic(filter_images(self.model, first, per_channel=False))
        self.model.eval()
        with no_grad(), capture(self.model, self.layers) as acts:
            self.model(Tensor(self.model.preprocess.preprocess(xte[:1])))
        activations = []
        for n in self.layers:
            img, geom = render.mosaic(to_numpy(acts[n].data[0]))
            activations.append({"name": n, "image": render.png_url(img), **geom})
        gradients = []
        for n, g in getattr(self, "_grads", []):
            img, geom = render.mosaic(g, signed=True)
            gradients.append({"name": n, "norm": float(np.linalg.norm(g)),
                              "image": render.png_url(img), **geom})
        logits = self._test_logits
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        wrong = np.flatnonzero(p.argmax(1) != yte)
        wrong = wrong[np.argsort(-p[wrong].max(1))][:12]        # the most confident mistakes
        labels = _labels(self.name)
        self.pictures = {
            "filters": {"image": render.png_url(filters), "layer": first, **fgeom},
            "activations": activations, "gradients": gradients,
            "test_label": labels[int(yte[0])],
            "wrong": [{"image": render.png_url(np.asarray(xte[k], np.uint8)),
                       "label": labels[int(yte[k])], "guess": labels[int(p[k].argmax())],
                       "prob": float(p[k].max())} for k in wrong]}
        self.version += 1

    # ------------------------------------------------------------------ what the page reads
    def snapshot(self, since_version=-1):
        """The run as the page shows it; the pictures only when newer than ``since_version``."""
        with self.lock:
            out = {"network": self.name, "status": self.status, "error": self.error,
                   "step": self.step, "lr": self.lr, "batch_size": self.batch_size,
                   "curves": self.curves, "version": self.version,
                   "saved": [str(Path(p).name) for p in self.saved]}
            if self.pictures is not None and self.version != since_version:
                out["pictures"] = self.pictures
            return out

    def save(self, folder=None):
        """The run's weights as a minicnn .npz (with its manifest) in ``cache_dir()/explore/
        runs`` (never the shipped weights); returns the path."""
        from ..io import cache_dir, save_npz
        with self.lock:
            if self.step == 0:
                raise ExploreError("nothing to save yet: start training first")
            test = self.curves["test"]
            folder = Path(folder) if folder else cache_dir() / "explore" / "runs"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.name}-step{self.step}-{time.strftime('%Y%m%d-%H%M%S')}.npz"
            state = {k: np.asarray(to_numpy(v)) for k, v in self.model.state_dict().items()}
            pre = self.model.preprocess
            save_npz(path, state, {
                "architecture": self.name, "labels": _labels(self.name),
                "preprocessing": pre.to_dict(),
                "accuracy": {"value": test["acc"][-1] if test["acc"] else None,
                             "on": f"{self.held_out} held-out test images"},
                "provenance": {"command": "minicnn explore: Train tab", "steps": self.step,
                               "lr": self.lr, "batch_size": self.batch_size,
                               "optimizer": "adam", "seed": self.seed}})
            self.saved.append(path)
            return path


def _labels(name):
    from ..data.cifar import CIFAR10_CLASSES
    from ..data.datasets import FASHION_MNIST_CLASSES
    return list(FASHION_MNIST_CLASSES if name == "fashion_net" else CIFAR10_CLASSES)
