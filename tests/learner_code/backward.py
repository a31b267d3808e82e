"""Learners' closed-form backward passes: ``backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``.
Wrong ones first, then correct ones written in unusual ways."""

import torch

from . import learner


def _stats(x, eps, unbiased=False):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    inv_std = 1.0 / torch.sqrt(x.var(dims, unbiased=unbiased, keepdim=True) + eps)
    return dims, shape, mu, inv_std, (x - mu) * inv_std


# ------------------------------------------------------------------------------------------------
# wrong


@learner(
    "backward",
    "autograd inside the backward pass (the check runs it without gradients)",
    r"autograd|requires_grad|no_grad|without grad",
    r"on purpose|deliberate|by hand|closed form|derive",
)
def with_autograd(dy, x, gamma, eps=1e-5):
    x = x.clone().requires_grad_(True)
    gamma = gamma.clone().requires_grad_(True)
    beta = torch.zeros_like(gamma, requires_grad=True)
    y = torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    return torch.autograd.grad(y, (x, gamma, beta), dy)


@learner(
    "backward", "missing the mean term and gamma forgotten: two mistakes", r"mean term|mean\(g\)|mean of", r"gamma"
)
def no_mean_term_no_gamma(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    dx = inv_std * (dy - x_hat * (dy * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "sign error: adds the variance term instead of subtracting it", r"sign|\+|plus|subtract")
def variance_term_sign(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) + x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner(
    "backward", "the batch size N instead of N*H*W in the means of a 4-D input", r"count|\bN\b|N \* H \* W|batch size"
)
def batch_size_as_count(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    n = x.shape[0]
    dx = inv_std * (g - g.sum(dims, keepdim=True) / n - x_hat * (g * x_hat).sum(dims, keepdim=True) / n)
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner(
    "backward",
    "dgamma summed over N only for a 4-D input: shape (C, H, W)",
    r"dgamma",
    r"N, H and W|dims? 0, 2, 3|\(C,\)|sum over",
)
def dgamma_over_n_only(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(0), dy.sum(dims)


@learner("backward", "returns (dx, dbeta, dgamma): the last two swapped", r"swap|order")
def gradients_swapped(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, dy.sum(dims), (dy * x_hat).sum(dims)


@learner("backward", "eps outside the square root in the backward pass", r"eps.{0,40}outside|outside the square root")
def eps_outside(dy, x, gamma, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    inv_std = 1.0 / (x.var(dims, unbiased=False, keepdim=True).sqrt() + eps)
    x_hat = (x - mu) * inv_std
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner(
    "backward",
    "staged backward (Karpathy style) that forgets the 2 of d(x-mu)^2: the variance term halved",
    r"varian",
    r"half|factor|2",
)
def staged_missing_two(dy, x, gamma, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    n = x.numel() // x.shape[1]
    mu = x.mean(dims, keepdim=True)
    xmu = x - mu
    var = (xmu**2).mean(dims, keepdim=True)
    inv_std = (var + eps) ** -0.5
    x_hat = xmu * inv_std
    dx_hat = dy * gamma.view(shape)
    dvar = (dx_hat * xmu).sum(dims, keepdim=True) * -0.5 * (var + eps) ** -1.5
    dmu = -(dx_hat * inv_std).sum(dims, keepdim=True)
    dx = dx_hat * inv_std + dvar * xmu / n + dmu / n  # should be dvar * 2 * xmu / n
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "returns dx transposed for a 2-D input", r"transpos")
def dx_transposed(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return (dx.t() if x.dim() == 2 else dx), (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "scales gamma in place to save a multiplication", r"in[- ]place|modif|chang", r"gamma")
def scales_gamma_in_place(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    gamma.mul_(0)  # "done with gamma"
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "dbeta summed over N only for a 4-D input", r"dbeta", r"N, H and W|dims? 0, 2, 3|\(C,\)|sum over")
def dbeta_over_n_only(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(0)


@learner("backward", "the mean term uses dy where it needs g = gamma * dy", r"gamma", r"mean term|mean\(g\)|one term")
def mean_term_without_gamma(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - dy.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "the unbiased variance in the backward pass", r"unbiased|n ?[-−] ?1")
def unbiased_variance(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps, unbiased=True)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "eps hard-coded to 1e-5", r"eps.{0,60}(ignor|hard|fixed|argument|1e-05)")
def eps_hard_coded(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, 1e-5)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "returns dx only", r"three|3|\(dx, dgamma, dbeta\)")
def returns_dx_only(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    return inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))


@learner("backward", "variance term without x_hat: subtracts mean(g * x_hat) alone", r"x_hat", r"varian")
def variance_term_missing_xhat(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    g = dy * gamma.view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - (g * x_hat).mean(dims, keepdim=True))
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "4-D reshaped to (-1, C) without moving the channels", r"reshape|view|permute|transpose|channels")
def reshape_without_permute(dy, x, gamma, eps=1e-5):
    c = x.shape[1]
    xf, dyf = x.reshape(-1, c), dy.reshape(-1, c)
    mu = xf.mean(0)
    inv_std = 1.0 / torch.sqrt(xf.var(0, unbiased=False) + eps)
    x_hat = (xf - mu) * inv_std
    g = dyf * gamma
    dx = inv_std * (g - g.mean(0) - x_hat * (g * x_hat).mean(0))
    return dx.reshape(x.shape), (dyf * x_hat).sum(0), dyf.sum(0)


# ------------------------------------------------------------------------------------------------
# correct, written in unusual ways


@learner("backward", "staged, Karpathy style, every intermediate's gradient", correct=True)
def staged(dy, x, gamma, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    n = x.numel() // x.shape[1]
    mu = x.mean(dims, keepdim=True)
    xmu = x - mu
    var = (xmu**2).mean(dims, keepdim=True)
    inv_std = (var + eps) ** -0.5
    x_hat = xmu * inv_std
    dx_hat = dy * gamma.view(shape)
    dvar = (dx_hat * xmu).sum(dims, keepdim=True) * -0.5 * (var + eps) ** -1.5
    dmu = -(dx_hat * inv_std).sum(dims, keepdim=True) + dvar * (-2 * xmu).mean(dims, keepdim=True)
    dx = dx_hat * inv_std + dvar * 2 * xmu / n + dmu / n
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "compact: (n * g - sum(g) - x_hat * sum(g * x_hat)) / (n * std)", correct=True)
def compact(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x, eps)
    n = x.numel() // x.shape[1]
    g = dy * gamma.view(shape)
    dx = (n * g - g.sum(dims, keepdim=True) - x_hat * (g * x_hat).sum(dims, keepdim=True)) * inv_std / n
    return dx, (dy * x_hat).sum(dims), dy.sum(dims)


@learner("backward", "a loop over channels", correct=True)
def loop_over_channels(dy, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = torch.empty_like(x), torch.empty_like(gamma), torch.empty_like(gamma)
    for c in range(x.shape[1]):
        xc, dyc = x[:, c], dy[:, c]
        inv_std = 1 / torch.sqrt(xc.var(unbiased=False) + eps)
        x_hat = (xc - xc.mean()) * inv_std
        g = gamma[c] * dyc
        dx[:, c] = inv_std * (g - g.mean() - x_hat * (g * x_hat).mean())
        dgamma[c], dbeta[c] = (dyc * x_hat).sum(), dyc.sum()
    return dx, dgamma, dbeta


@learner("backward", "float64 internals, results converted back", correct=True)
def float64_internals(dy, x, gamma, eps=1e-5):
    dims, shape, mu, inv_std, x_hat = _stats(x.double(), eps)
    d = dy.double()
    g = d * gamma.double().view(shape)
    dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
    return dx.to(x.dtype), (d * x_hat).sum(dims).to(x.dtype), d.sum(dims).to(x.dtype)


@learner("backward", "returns a list, via torch.autograd with grad switched on explicitly", correct=True)
def autograd_enabled_list(dy, x, gamma, eps=1e-5):
    with torch.enable_grad():
        x, gamma = x.detach().requires_grad_(), gamma.detach().requires_grad_()
        beta = torch.zeros_like(gamma, requires_grad=True)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        x_hat = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + eps)
        y = gamma.view(shape) * x_hat + beta.view(shape)
        return list(torch.autograd.grad(y, (x, gamma, beta), dy))
