"""optim: SGD and Adam follow PyTorch's update rules exactly; schedules; resumable state."""
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.nn import optim
from minicnn.backend import as_backend, backend_name as backend_of, to_numpy

SHAPES = [(3, 4), (5,)]


def grad_field(p):
    """A gradient that depends on the parameter non-linearly, the same on both sides."""
    return np.cos(3 * p) + p ** 3 - 0.5


def initial_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def run_minicnn(make_opt, arrays, steps):
    params = [nn.Parameter(a.copy()) for a in arrays]
    opt = make_opt(params)
    for t in range(steps):
        opt.zero_grad()
        for i, p in enumerate(params):
            if not (i == 1 and t == 2):                  # a parameter without grad is skipped
                p.grad = grad_field(p.data)
        opt.step()
    return params, opt


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.01, dampening=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05)),
]


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_matches_torch_optim_step_by_step(name, kwargs):
    torch = pytest.importorskip("torch")
    arrays = initial_params()
    tparams = [torch.tensor(a, requires_grad=True) for a in arrays]
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    params = [nn.Parameter(a.copy()) for a in arrays]
    opt = getattr(optim, name)(params, **kwargs)
    for t in range(5):
        opt.zero_grad()
        topt.zero_grad()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            if i == 1 and t == 2:
                continue                                   # no grad this step: both skip it
            p.grad = grad_field(p.data)
            tp.grad = torch.tensor(grad_field(tp.detach().numpy()))
        opt.step()
        topt.step()
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {kwargs} step {t + 1}")


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda ps: optim.Adam(ps, lr=0.1)], ids=["sgd", "adam"])
def test_minimizes_a_quadratic(make, backend_name):
    """||A p - t||² from a fixed start, through autograd, on every backend."""
    rng = np.random.default_rng(0)
    a = mc.tensor(as_backend(np.eye(3) + 0.1 * rng.standard_normal((3, 3)), backend_name))
    target = mc.tensor(as_backend(np.array([[1.0], [-2.0], [0.5]]), backend_name))
    p = nn.Parameter(as_backend(np.zeros((3, 1)), backend_name))
    opt = make([p])
    for _ in range(300):
        opt.zero_grad()
        loss = ((a @ p - target) ** 2).sum()
        loss.backward()
        opt.step()
    assert backend_of(p.data) == backend_name
    assert loss.item() < 1e-8
    np.testing.assert_allclose(to_numpy(a.data) @ to_numpy(p.data), [[1.0], [-2.0], [0.5]], atol=1e-4)


@pytest.mark.parametrize("name, kwargs", [CONFIGS[3], CONFIGS[5]])
def test_state_dict_round_trip_resumes_identically(name, kwargs):
    make = lambda ps: getattr(optim, name)(ps, **kwargs)   # noqa: E731
    straight, _ = run_minicnn(make, initial_params(), 5)

    params, opt = run_minicnn(make, initial_params(), 3)
    saved_params = [p.data.copy() for p in params]
    saved = opt.state_dict()
    opt.step()                                           # keeps changing after the snapshot...
    assert all(s for s in saved["state"].values())       # ...but the snapshot holds copies
    resumed = [nn.Parameter(a) for a in saved_params]
    opt2 = make(resumed)
    opt2.load_state_dict(saved)
    for t in range(3, 5):
        opt2.zero_grad()
        for p in resumed:
            p.grad = grad_field(p.data)
        opt2.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)


def test_load_state_dict_moves_buffers_to_the_parameter_backend():
    params, opt = run_minicnn(lambda ps: optim.Adam(ps, lr=0.01), initial_params(), 2)
    strict_params = [nn.Parameter(as_backend(p.data, "strict")) for p in params]
    opt2 = optim.Adam(strict_params, lr=0.01)
    opt2.load_state_dict(opt.state_dict())
    assert backend_of(opt2.state[0]["exp_avg"]) == "strict" and opt2.state[0]["step"] == 2
    for p in strict_params:
        p.grad = as_backend(grad_field(to_numpy(p.data)), "strict")
    opt2.step()
    bad = opt.state_dict()
    bad["state"][0]["exp_avg"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"exp_avg of parameter 0 has shape \(2, 2\), "
                                         r"the parameter \(3, 4\)"):
        optim.Adam(params).load_state_dict(bad)


def test_optimizer_updates_the_same_parameter_objects_of_a_model():
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    weight = model[0].weight
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(mc.tensor(np.ones((1, 3), np.float32))).sum().backward()
    before = weight.data.copy()
    opt.step()
    assert model[0].weight is weight and weight.dtype == np.float32
    np.testing.assert_allclose(weight.data, before - 0.1 * np.ones((2, 3)), rtol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov needs momentum > 0"):
        optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="parameter 0 is a Tensor that does not require grad"):
        optim.Adam([mc.tensor(np.zeros(2))])


def test_schedules_set_the_learning_rate():
    p = [nn.Parameter(np.zeros(1))]
    opt = optim.SGD(p, lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    assert [sched.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    assert opt.lr == 0.25
    opt = optim.SGD(p, lr=1.0)
    cos = optim.CosineLR(opt, T_max=4, eta_min=0.1)
    lrs = [cos.step() for _ in range(5)]
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4, 4)]
    np.testing.assert_allclose(lrs, expected)
    resumed = optim.CosineLR(optim.SGD(p, lr=1.0), T_max=4, eta_min=0.1)
    resumed.load_state_dict({"epoch": 2, "base_lr": 1.0})
    assert resumed.optimizer.lr == pytest.approx(expected[1])


@pytest.mark.torch
def test_schedules_match_torch():
    torch = pytest.importorskip("torch")
    tp = [torch.zeros(1, requires_grad=True)]
    topt = torch.optim.SGD(tp, lr=0.3)
    tstep = torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.7)
    topt2 = torch.optim.SGD(tp, lr=0.3)
    tcos = torch.optim.lr_scheduler.CosineAnnealingLR(topt2, T_max=6, eta_min=0.01)
    p = [nn.Parameter(np.zeros(1))]
    step = optim.StepLR(optim.SGD(p, lr=0.3), step_size=3, gamma=0.7)
    cos = optim.CosineLR(optim.SGD(p, lr=0.3), T_max=6, eta_min=0.01)
    for _ in range(6):
        topt.step()
        topt2.step()
        tstep.step()
        tcos.step()
        assert step.step() == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert cos.step() == pytest.approx(topt2.param_groups[0]["lr"], rel=1e-9)
