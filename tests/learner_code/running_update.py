"""Learners' running-statistics updates: ``update(running_mean, running_var, x, momentum) -> (new_mean,
new_var)`` in PyTorch's convention. Wrong ones first, then correct ones written in unusual ways."""

import torch

from . import learner


def _batch(x, unbiased=True):
    dims = [0, *range(2, x.dim())]
    return x.mean(dims), x.var(dims, unbiased=unbiased)


# ------------------------------------------------------------------------------------------------
# wrong


@learner("running_update", "returns (new_var, new_mean): the statistics in the wrong order", r"order|swap")
def wrong_order(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x)
    return (1 - momentum) * running_var + momentum * var, (1 - momentum) * running_mean + momentum * mean


@learner(
    "running_update",
    "momentum hard-coded to 0.1, the argument ignored",
    r"momentum.{0,60}(ignor|hard|fixed|argument|0\.1\b)",
)
def momentum_hard_coded(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x)
    return 0.9 * running_mean + 0.1 * mean, 0.9 * running_var + 0.1 * var


@learner(
    "running_update",
    "4-D: variance over N per position, then averaged over H and W",
    r"varian",
    r"position|H and W|between|spatial|N only|dim 0",
)
def variance_per_position(running_mean, running_var, x, momentum=0.1):
    if x.dim() == 4:
        mean = x.mean(0).mean((1, 2))
        var = x.var(0).mean((1, 2))
    else:
        mean, var = _batch(x)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var


@learner(
    "running_update",
    "the batch variance taken around the old running mean",
    r"varian",
    r"running.?mean|old mean|batch mean|around",
)
def variance_around_running_mean(running_mean, running_var, x, momentum=0.1):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    n = x.numel() // x.shape[1]
    mean = x.mean(dims)
    var = ((x - running_mean.view(shape)) ** 2).sum(dims) / (n - 1)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var


@learner("running_update", "reversed momentum on the variance only", r"revers|1 - momentum|weight", r"var")
def reversed_on_variance_only(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x)
    return (1 - momentum) * running_mean + momentum * mean, momentum * running_var + (1 - momentum) * var


@learner("running_update", "returns only the new mean", r"tuple|two|\(new_mean, new_var\)")
def returns_mean_only(running_mean, running_var, x, momentum=0.1):
    mean, _ = _batch(x)
    return (1 - momentum) * running_mean + momentum * mean


@learner("running_update", "eps added to the running variance", r"eps|constant|offset|added")
def adds_eps(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * (var + 1e-5)


@learner(
    "running_update",
    "biased variance and the momentum hard-coded to 0.1",
    r"unbiased|n ?[-−] ?1|Bessel",
    r"momentum.{0,60}(ignor|hard|fixed|argument|0\.1\b)",
)
def biased_and_hard_coded(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x, unbiased=False)
    return 0.9 * running_mean + 0.1 * mean, 0.9 * running_var + 0.1 * var


@learner(
    "running_update",
    "4-D: statistics over N only, then mean over everything else (shape fixed with .mean)",
    r"varian",
    r"position|H and W|between|spatial|N only|dim 0",
)
def four_d_var_over_n_then_flattened(running_mean, running_var, x, momentum=0.1):
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dims)
    var = x.var(0).reshape(x.shape[1], -1).mean(1) if x.dim() == 4 else x.var(0)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var


# ------------------------------------------------------------------------------------------------
# correct, written in unusual ways


@learner("running_update", "torch.lerp towards the batch statistics", correct=True)
def with_lerp(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x)
    return torch.lerp(running_mean, mean, momentum), torch.lerp(running_var, var, momentum)


@learner("running_update", "Bessel's correction by hand with n = N * H * W", correct=True)
def bessel_by_hand(running_mean, running_var, x, momentum=0.1):
    dims = [0, *range(2, x.dim())]
    n = x.numel() // x.shape[1]
    mean = x.mean(dims)
    var = x.var(dims, unbiased=False) * n / (n - 1)
    new_mean = running_mean + momentum * (mean - running_mean)
    new_var = running_var + momentum * (var - running_var)
    return new_mean, new_var


@learner("running_update", "in place on the buffers, as torch does, and returns them", correct=True)
def in_place_like_torch(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x)
    running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
    running_var.mul_(1 - momentum).add_(var, alpha=momentum)
    return running_mean, running_var


@learner("running_update", "a loop over channels, returned as a list", correct=True)
def loop_over_channels(running_mean, running_var, x, momentum=0.1):
    new_mean, new_var = running_mean.clone(), running_var.clone()
    for c in range(x.shape[1]):
        xc = x[:, c].reshape(-1)
        new_mean[c] = (1 - momentum) * running_mean[c] + momentum * xc.mean()
        new_var[c] = (1 - momentum) * running_var[c] + momentum * xc.var()
    return [new_mean, new_var]


@learner("running_update", "float64 internals, converted back", correct=True)
def float64_internals(running_mean, running_var, x, momentum=0.1):
    mean, var = _batch(x.double())
    return (
        ((1 - momentum) * running_mean.double() + momentum * mean).to(x.dtype),
        ((1 - momentum) * running_var.double() + momentum * var).to(x.dtype),
    )
