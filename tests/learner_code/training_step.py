"""Learners' training steps: ``step(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y,
new_mean, new_var)``, one training-mode forward pass of a BN layer. Wrong ones first, then correct ones."""

import torch

from . import learner


def _dims_shape(x):
    return [0, *range(2, x.dim())], (1, -1) + (1,) * (x.dim() - 2)


# ------------------------------------------------------------------------------------------------
# wrong


@learner(
    "training_step",
    "normalizes x in place to save memory (the caller's x is changed)",
    r"in[- ]place|modif|chang",
    r"\bx\b",
)
def normalizes_x_in_place(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    n = x.numel() // x.shape[1]
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    x.sub_(mean.view(shape)).div_(torch.sqrt(var.view(shape) + eps))
    return gamma.view(shape) * x + beta.view(shape), new_mean, new_var


@learner("training_step", "returns (y, new_var, new_mean)", r"order|swap")
def statistics_swapped(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    y = gamma.view(shape) * (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) + beta.view(shape)
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * x.var(dims)
    return y, new_var, new_mean


@learner("training_step", "momentum hard-coded to 0.1", r"momentum.{0,60}(ignor|hard|fixed|argument|0\.1\b)")
def momentum_hard_coded(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    y = gamma.view(shape) * (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) + beta.view(shape)
    return y, 0.9 * running_mean + 0.1 * mean, 0.9 * running_var + 0.1 * x.var(dims)


@learner("training_step", "eps hard-coded to 1e-5 in y", r"eps.{0,60}(ignor|hard|fixed|argument|1e-05)")
def eps_hard_coded(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    y = gamma.view(shape) * (x - mean.view(shape)) / torch.sqrt(var.view(shape) + 1e-5) + beta.view(shape)
    return y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * x.var(dims)


@learner(
    "training_step",
    "normalizes with the running statistics and updates them with the biased variance",
    r"running statistics used|running_mean and running_var|model\.eval|running ones",
    r"unbiased|n ?[-−] ?1|Bessel",
)
def running_stats_and_biased(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    y = gamma.view(shape) * (x - running_mean.view(shape)) / torch.sqrt(running_var.view(shape) + eps)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    return (
        y + beta.view(shape),
        (1 - momentum) * running_mean + momentum * mean,
        (1 - momentum) * running_var + momentum * var,
    )


@learner("training_step", "returns (new_mean, new_var, y)", r"order|swap|\(y, new_mean, new_var\)")
def y_last(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    y = gamma.view(shape) * (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) + beta.view(shape)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * x.var(dims), y


@learner(
    "training_step",
    "4-D flattened with reshape(-1, C) without moving the channels",
    r"reshape|view|permute|transpose|mov(e|ing) the channels",
)
def reshape_without_permute(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    c = x.shape[1]
    flat = x.reshape(-1, c)
    mean, var = flat.mean(0), flat.var(0, unbiased=False)
    y = (gamma * (flat - mean) / torch.sqrt(var + eps) + beta).reshape(x.shape)
    return y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * flat.var(0)


@learner(
    "training_step",
    "reversed momentum and the biased variance in the running statistics",
    r"revers|1 - momentum",
    r"unbiased|n ?[-−] ?1|Bessel",
)
def reversed_and_biased(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    y = gamma.view(shape) * (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) + beta.view(shape)
    return y, momentum * running_mean + (1 - momentum) * mean, momentum * running_var + (1 - momentum) * var


@learner(
    "training_step",
    "updates the buffers in place, then normalizes x with the updated ones",
    r"updated|\*updated\*|new running|running statistics used",
)
def updated_buffers_in_place_then_used(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    running_mean.mul_(1 - momentum).add_(momentum * x.mean(dims))
    running_var.mul_(1 - momentum).add_(momentum * x.var(dims))
    y = (x - running_mean.view(shape)) / torch.sqrt(running_var.view(shape) + eps)
    return gamma.view(shape) * y + beta.view(shape), running_mean, running_var


# ------------------------------------------------------------------------------------------------
# correct, written in unusual ways


@learner("training_step", "torch.var_mean and torch.lerp, returned as a list", correct=True)
def var_mean_lerp(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    n = x.numel() // x.shape[1]
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps) * gamma.view(shape) + beta.view(shape)
    return [y, torch.lerp(running_mean, mean, momentum), torch.lerp(running_var, var * n / (n - 1), momentum)]


@learner("training_step", "einsum over a (C, n) view", correct=True)
def with_einsum(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    c = x.shape[1]
    flat = x.transpose(0, 1).reshape(c, -1)
    n = flat.shape[1]
    mean = torch.einsum("cn->c", flat) / n
    centred = flat - mean[:, None]
    var = torch.einsum("cn,cn->c", centred, centred) / n
    y = gamma[:, None] * centred / torch.sqrt(var[:, None] + eps) + beta[:, None]
    y = y.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)
    return (
        y,
        (1 - momentum) * running_mean + momentum * mean,
        (1 - momentum) * running_var + momentum * var * n / (n - 1),
    )


@learner("training_step", "torch's own functional batch norm on copies of the buffers", correct=True)
def torch_functional(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    new_mean, new_var = running_mean.clone(), running_var.clone()
    y = torch.nn.functional.batch_norm(x, new_mean, new_var, gamma, beta, training=True, momentum=momentum, eps=eps)
    return y, new_mean, new_var


@learner("training_step", "float64 internals, converted back", correct=True)
def float64_internals(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    dims, shape = _dims_shape(x)
    xd = x.double()
    mean, var = xd.mean(dims), xd.var(dims, unbiased=False)
    n = x.numel() // x.shape[1]
    y = gamma.double().view(shape) * (xd - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) + beta.double().view(
        shape
    )
    new_mean = (1 - momentum) * running_mean.double() + momentum * mean
    new_var = (1 - momentum) * running_var.double() + momentum * var * n / (n - 1)
    return y.to(x.dtype), new_mean.to(x.dtype), new_var.to(x.dtype)
