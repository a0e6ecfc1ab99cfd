"""Optimizers (SGD, Adam) and learning-rate schedules (StepLR, CosineLR).

An optimizer holds a list of Parameters and, per parameter, the state its
rule needs (momentum buffer; Adam's two moments and step count). ``step()``
reads each ``p.grad`` and updates ``p.data`` in place, using the array module
of that parameter — so the same code runs on NumPy and CuPy. The update rules
are PyTorch's, line for line (g = gradient, θ = parameter, t = step):

    SGD    g ← g + λθ                       (weight decay λ)
           b ← g (first step),  b ← μb + g   (momentum μ)
           g ← g + μb (nesterov)  or  g ← b
           θ ← θ − lr·g
    Adam   g ← g + λθ
           m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²
           θ ← θ − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)

Schedules set ``opt.lr``; call ``sched.step()`` once per epoch.
"""
import math

from ..backend import get_array_module, like, to_numpy

__all__ = ["Optimizer", "SGD", "Adam", "StepLR", "CosineLR"]


class Optimizer:
    """Base class: holds ``params`` (a list), ``lr`` and per-parameter ``state`` dicts."""

    defaults = ()   # names of the hyper-parameters saved in state_dict

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not getattr(p, "requires_grad", False):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a "
                                f"{type(p).__name__} that does not require grad")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        self.lr = lr
        self.state = [dict() for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self._update(p, p.grad, state)

    def _update(self, p, g, state):
        raise NotImplementedError

    def state_dict(self):
        """{"lr", hyper-parameters..., "state": {param index: {name: array or number}}} (copies)."""
        state = {i: {k: (v.copy() if hasattr(v, "copy") else v) for k, v in s.items()}
                 for i, s in enumerate(self.state) if s}
        return {"lr": self.lr, **{k: getattr(self, k) for k in self.defaults}, "state": state}

    def load_state_dict(self, sd):
        """Resume from ``state_dict()``; arrays go to each parameter's backend and dtype."""
        state = [dict() for _ in self.params]
        for i, saved in sd["state"].items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter {i}, "
                                 f"but this optimizer has {len(self.params)} parameters")
            p = self.params[i].data
            for k, v in saved.items():
                if hasattr(v, "shape"):      # a moment buffer: copy to p's backend
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"{type(self).__name__}.load_state_dict: {k} of "
                                         f"parameter {i} has shape {tuple(v.shape)}, the "
                                         f"parameter {tuple(p.shape)}")
                    v = like(to_numpy(v).astype(p.dtype, copy=True), p)
                state[i][k] = v
        self.state = state
        self.lr = sd["lr"]
        for k in self.defaults:
            if k in sd:
                setattr(self, k, sd[k])


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay."""

    defaults = ("momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        self.momentum, self.nesterov = momentum, nesterov
        self.weight_decay, self.dampening = weight_decay, dampening

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                buf = state["momentum_buffer"]
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            buf = state["momentum_buffer"]
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds λθ to the gradient (L2, not AdamW)."""

    defaults = ("betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def _update(self, p, g, state):
        xp = get_array_module(p.data)
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step_size = self.lr / (1 - b1 ** t)
        denom = xp.sqrt(v) / math.sqrt(1 - b2 ** t) + self.eps
        p.data -= step_size * (m / denom)


class _Schedule:
    """Sets ``optimizer.lr`` from the epoch count; ``step()`` advances one epoch."""

    def __init__(self, optimizer):
        self.optimizer, self.base_lr, self.epoch = optimizer, optimizer.lr, 0

    def step(self):
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def state_dict(self):
        return {"epoch": self.epoch, "base_lr": self.base_lr}

    def load_state_dict(self, sd):
        self.epoch, self.base_lr = sd["epoch"], sd["base_lr"]
        self.optimizer.lr = self.lr_at(self.epoch)


class StepLR(_Schedule):
    """lr = base_lr · gamma ^ floor(epoch / step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(_Schedule):
    """lr = eta_min + (base_lr − eta_min) · (1 + cos(π · epoch / T_max)) / 2 (PyTorch's
    CosineAnnealingLR, closed form), constant at eta_min after T_max epochs."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch):
        e = min(epoch, self.T_max)
        cosine = (1 + math.cos(math.pi * e / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cosine
