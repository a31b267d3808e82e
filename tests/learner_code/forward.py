"""Learners' forward passes: ``forward(x, gamma, beta, eps) -> y`` in training mode, x of shape (N, C)
or (N, C, H, W). Wrong ones first, then correct ones written in unusual ways."""

import torch

from . import learner

# ------------------------------------------------------------------------------------------------
# wrong


@learner(
    "forward",
    "torch.std (unbiased by default) plus eps outside the root: two textbook mistakes in one line",
    r"unbiased|n ?[-−] ?1",
    r"eps.{0,40}outside|outside the square root",
)
def std_plus_eps(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dim=dims, keepdim=True)
    return gamma.view(shape) * (x - mu) / (x.std(dim=dims, keepdim=True) + eps) + beta.view(shape)


@learner(
    "forward", "unbiased variance and no eps at all", r"unbiased|n ?[-−] ?1", r"eps.{0,30}(missing|ignored|not used)"
)
def unbiased_no_eps(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True)
    return gamma.reshape(shape) * (x - mu) / var.sqrt() + beta.reshape(shape)


@learner(
    "forward",
    "4-D input flattened to (N*H*W, C) with reshape, without moving the channels first",
    r"reshape|view|permute|transpose|mov(e|ing) the channels",
)
def reshape_without_permute(x, gamma, beta, eps=1e-5):
    if x.dim() == 4:
        n, c, h, w = x.shape
        flat = x.reshape(-1, c)  # mixes channels and positions
        mu, var = flat.mean(0), flat.var(0, unbiased=False)
        out = gamma * (flat - mu) / torch.sqrt(var + eps) + beta
        return out.reshape(n, c, h, w)
    mu, var = x.mean(0), x.var(0, unbiased=False)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta


@learner(
    "forward",
    "the batch size N as the count for a 4-D input: sums over N, H, W divided by N",
    r"count|divid\w* by N\b|N = \d|n = N \* H \* W|N \* H \* W",
)
def batch_size_as_count(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    n = x.shape[0]
    mu = x.sum(dims, keepdim=True) / n
    var = ((x - mu) ** 2).sum(dims, keepdim=True) / n
    return gamma.view(shape) * (x - mu) / torch.sqrt(var + eps) + beta.view(shape)


@learner("forward", "eps hard-coded to 1e-5, the argument ignored", r"eps.{0,60}(ignor|hard|fixed|argument|1e-05)")
def eps_hard_coded(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return gamma.view(shape) * (x - mu) / torch.sqrt(var + 1e-5) + beta.view(shape)


@learner("forward", "beta inside the product: gamma * (x_hat + beta)", r"beta")
def beta_inside(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    x_hat = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + eps)
    return gamma.view(shape) * (x_hat + beta.view(shape))


@learner("forward", "normalized the transpose for a 2-D input and forgot to transpose back", r"transpos")
def transposed_output(x, gamma, beta, eps=1e-5):
    if x.dim() == 2:
        xt = x.t()  # (C, N): one row per channel
        x_hat = (xt - xt.mean(1, keepdim=True)) / torch.sqrt(xt.var(1, unbiased=False, keepdim=True) + eps)
        return gamma[:, None] * x_hat + beta[:, None]  # still (C, N)
    dims = [0, 2, 3]
    x_hat = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + eps)
    return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)


@learner(
    "forward",
    "in-place division of a tensor that autograd saved for the square",
    r"in[- ]place",
    r"autograd|saved|gradient",
)
def inplace_on_saved(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    xmu = x - x.mean(dims, keepdim=True)
    var = (xmu**2).mean(dims, keepdim=True)  # pow saves xmu for the backward pass
    xmu /= torch.sqrt(var + eps)  # ... which this changes in place
    return gamma.view(shape) * xmu + beta.view(shape)


class _MyBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, eps):
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mu = x.mean(dims, keepdim=True)
        inv_std = torch.rsqrt(x.var(dims, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mu) * inv_std
        ctx.save_for_backward(x_hat, inv_std, gamma)
        return gamma.view(shape) * x_hat + beta.view(shape)

    @staticmethod
    def backward(ctx, dy):
        x_hat, inv_std, gamma = ctx.saved_tensors
        dims = [0, *range(2, dy.dim())]
        shape = (1, -1) + (1,) * (dy.dim() - 2)
        g = dy * gamma.view(shape)
        dx = inv_std * (g - g.mean(dims, keepdim=True) - x_hat * (g * x_hat).mean(dims, keepdim=True))
        return dx, (dy * x_hat).sum(dims), dy.sum(dims)  # one gradient short: eps needs a None


@learner(
    "forward",
    "own autograd.Function whose backward returns 3 gradients for 4 inputs",
    r"autograd\.Function|backward",
    r"number of gradients|(4|four) (values|gradients)|None for eps|one per input",
)
def own_function_wrong_gradient_count(x, gamma, beta, eps=1e-5):
    return _MyBatchNorm.apply(x, gamma, beta, eps)


@learner("forward", "CS231n style: returns (out, cache)", r"tuple|cache|only y|just y")
def returns_cache(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    x_hat = (x - mu) / torch.sqrt(var + eps)
    out = gamma.view(shape) * x_hat + beta.view(shape)
    return out, (x_hat, mu, var, gamma, eps)


@learner("forward", "NumPy inside: x.numpy() on a tensor that requires grad", r"numpy|NumPy", r"torch")
def via_numpy(x, gamma, beta, eps=1e-5):
    import numpy as np

    a = x.numpy()
    axes = (0,) + tuple(range(2, a.ndim))
    shape = (1, -1) + (1,) * (a.ndim - 2)
    y = (a - a.mean(axes, keepdims=True)) / np.sqrt(a.var(axes, keepdims=True) + eps)
    return torch.from_numpy(y) * gamma.view(shape) + beta.view(shape)


@learner(
    "forward",
    "mean over N, H, W but the variance over every dimension, channels included",
    r"varian",
    r"ax[ie]s|dim|channel",
)
def variance_over_all_dims(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    var = ((x - mu) ** 2).mean()
    return gamma.view(shape) * (x - mu) / torch.sqrt(var + eps) + beta.view(shape)


@learner("forward", "gamma missing and eps outside the root", r"gamma", r"eps.{0,40}outside|outside the square root")
def no_gamma_eps_outside(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    sd = x.var(dims, unbiased=False, keepdim=True).sqrt()
    return (x - mu) / (sd + eps) + beta.view(shape)


@learner("forward", "forgot to subtract the mean: divides x by the standard deviation", r"mean")
def no_centering(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    var = x.var(dims, unbiased=False, keepdim=True)
    return gamma.view(shape) * x / torch.sqrt(var + eps) + beta.view(shape)


@learner("forward", "eps squared inside the root: sqrt(var + eps**2)", r"eps ?\*\* ?2|squared|as if eps")
def eps_squared(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return gamma.view(shape) * (x - mu) / torch.sqrt(var + eps**2) + beta.view(shape)


@learner(
    "forward",
    "for 4-D, statistics over N only (every pixel its own) and the unbiased variance",
    r"N only|dim 0\)|every pixel|per position",
    r"unbiased|n ?[-−] ?1",
)
def four_d_over_n_unbiased(x, gamma, beta, eps=1e-5):
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(0, keepdim=True)
    var = x.var(0, keepdim=True)
    return gamma.view(shape) * (x - mu) / torch.sqrt(var + eps) + beta.view(shape)


@learner("forward", "float64 internally and never converted back", r"dtype|float64|float32")
def returns_float64(x, gamma, beta, eps=1e-5):
    x, gamma, beta = x.double(), gamma.double(), beta.double()
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    x_hat = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + eps)
    return gamma.view(shape) * x_hat + beta.view(shape)


@learner("forward", "the variance as E[x^2], without subtracting the mean first", r"varian", r"mean|centr|E\[x")
def variance_without_centering(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    var = (x**2).mean(dims, keepdim=True)
    return gamma.view(shape) * (x - mu) / torch.sqrt(var + eps) + beta.view(shape)


# ------------------------------------------------------------------------------------------------
# correct, written in unusual ways


@learner("forward", "float64 internals, converted back to the input's dtype", correct=True)
def float64_internals(x, gamma, beta, eps=1e-5):
    x64 = x.double()
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    x_hat = (x64 - x64.mean(dims, keepdim=True)) / torch.sqrt(x64.var(dims, unbiased=False, keepdim=True) + eps)
    return (gamma.double().view(shape) * x_hat + beta.double().view(shape)).to(x.dtype)


@learner("forward", "a loop over channels, stacked back along dim 1", correct=True)
def loop_over_channels(x, gamma, beta, eps=1e-5):
    outs = []
    for c in range(x.shape[1]):
        xc = x[:, c]
        mu = xc.mean()
        var = ((xc - mu) ** 2).mean()
        outs.append(gamma[c] * (xc - mu) / torch.sqrt(var + eps) + beta[c])
    return torch.stack(outs, dim=1)


@learner("forward", "einsum for the sums", correct=True)
def with_einsum(x, gamma, beta, eps=1e-5):
    n = x.numel() // x.shape[1]
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, n)
    mu = torch.einsum("cn->c", flat) / n
    centred = flat - mu[:, None]
    var = torch.einsum("cn,cn->c", centred, centred) / n
    y = torch.einsum("c,cn->cn", gamma * torch.rsqrt(var + eps), centred) + beta[:, None]
    return y.reshape(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1)


@learner("forward", "the moments formula E[x^2] - E[x]^2", correct=True)
def moments_formula(x, gamma, beta, eps=1e-5):
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = x.mean(dims, keepdim=True)
    var = (x * x).mean(dims, keepdim=True) - mean * mean
    return gamma.view(shape) * (x - mean) * torch.rsqrt(var + eps) + beta.view(shape)


@learner("forward", "channels moved first with permute, then a 2-D problem", correct=True)
def permute_then_2d(x, gamma, beta, eps=1e-5):
    if x.dim() == 4:
        n, c, h, w = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(-1, c)
        y = permute_then_2d(flat, gamma, beta, eps)
        return y.reshape(n, h, w, c).permute(0, 3, 1, 2)
    mean, var = x.mean(0), x.var(0, unbiased=False)
    return gamma * (x - mean) / torch.sqrt(var + eps) + beta


@learner("forward", "torch.var_mean with correction=0 and rsqrt", correct=True)
def var_mean_correction(x, gamma, beta, eps=1e-5):
    dims = tuple([0, *range(2, x.dim())])
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return torch.addcmul(beta.view(shape), gamma.view(shape), (x - mean) * torch.rsqrt(var + eps))


@learner("forward", "calls torch.nn.functional.batch_norm", correct=True)
def torch_functional(x, gamma, beta, eps=1e-5):
    return torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
