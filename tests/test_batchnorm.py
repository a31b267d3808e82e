"""The from-scratch batch norm against torch's, in float64: forward, backward, running
statistics, eval mode, state_dict exchange, and the errors on bad input."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import bn_utils
from bn_utils import BatchNorm1d, BatchNorm2d, batch_norm, batch_norm_gradients

TOL = 1e-9
SHAPES = {  # input shape -> (ours, torch's)
    (16, 5): (BatchNorm1d, nn.BatchNorm1d),
    (8, 5, 7): (BatchNorm1d, nn.BatchNorm1d),
    (4, 5, 3, 6): (BatchNorm2d, nn.BatchNorm2d),
}


def make_pair(shape, seed=0, **kwargs):
    """Our module and torch's, same arguments, same random affine parameters, float64."""
    ours_cls, torch_cls = SHAPES[shape]
    ours, ref = ours_cls(shape[1], **kwargs).double(), torch_cls(shape[1], **kwargs).double()
    if ref.affine:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            ref.weight.copy_(1 + 0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64))
            if ref.bias is not None:
                ref.bias.copy_(torch.randn(shape[1], generator=g, dtype=torch.float64))
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def random_input(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (3 + 2 * torch.randn(shape, generator=g, dtype=torch.float64)).requires_grad_()


def max_err(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_training_forward_and_gradients_match_torch(shape):
    ours, ref = make_pair(shape)
    x = random_input(shape, 1)
    x_ref = x.detach().clone().requires_grad_()
    upstream = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y, y_ref = ours(x), ref(x_ref)
    (y * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    assert max_err(y, y_ref) < TOL
    assert max_err(x.grad, x_ref.grad) < TOL, "input gradient differs"
    assert max_err(ours.weight.grad, ref.weight.grad) < TOL, "weight gradient differs"
    assert max_err(ours.bias.grad, ref.bias.grad) < TOL, "bias gradient differs"


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
def test_running_statistics_and_eval_match_torch_after_several_steps(shape, momentum):
    ours, ref = make_pair(shape, momentum=momentum)
    for step in range(5):
        x = random_input(shape, 10 + step).detach()
        ours(x), ref(x)
    for key in ("running_mean", "running_var"):
        assert max_err(getattr(ours, key), getattr(ref, key)) < TOL, key
    assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == 5
    ours.eval(), ref.eval()
    x = random_input(shape, 99)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), ref(x_ref)
    y.sum().backward(), y_ref.sum().backward()
    assert max_err(y, y_ref) < TOL
    assert max_err(x.grad, x_ref.grad) < TOL
    assert max_err(ours.weight.grad, ref.weight.grad) < TOL


def test_running_variance_is_unbiased_and_normalization_biased():
    bn = BatchNorm1d(1, momentum=1.0, affine=False).double()
    x = torch.tensor([[1.0], [2.0], [3.0], [6.0]], dtype=torch.float64)
    y = bn(x)
    assert bn.running_var.item() == pytest.approx(x.var(unbiased=True).item())
    expected = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + bn.eps)
    assert max_err(y, expected) < TOL


def test_momentum_none_is_cumulative_average():
    bn = BatchNorm1d(2, momentum=None)
    means = []
    for step in range(4):
        x = torch.randn(32, 2, generator=torch.Generator().manual_seed(step)) + step
        means.append(x.mean(0))
        bn(x)
    assert torch.allclose(bn.running_mean, torch.stack(means).mean(0), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(affine=False),
        dict(track_running_stats=False),
        dict(affine=False, track_running_stats=False),
        dict(bias=False),
        dict(eps=1e-3, momentum=0.5),
    ],
)
def test_constructor_variants_match_torch_in_both_modes(kwargs):
    shape = (8, 5, 7)
    ours, ref = make_pair(shape, **kwargs)
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert repr(ours).split("(", 1)[1] == repr(ref).split("(", 1)[1]
    for training in (True, False):
        ours.train(training), ref.train(training)
        x = random_input(shape, 3).detach()
        assert max_err(ours(x), ref(x)) < TOL


def test_state_dict_moves_both_ways():
    ours, ref = BatchNorm2d(4), nn.BatchNorm2d(4)
    assert (
        list(ours.state_dict())
        == list(ref.state_dict())
        == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    )
    ref.train()
    ref(torch.randn(8, 4, 3, 3))
    ours.load_state_dict(ref.state_dict())  # torch -> ours
    ours(torch.randn(8, 4, 3, 3) * 5)
    back = nn.BatchNorm2d(4)
    back.load_state_dict(ours.state_dict())  # ours -> torch
    for key, value in ours.state_dict().items():
        assert torch.equal(value, back.state_dict()[key]), key
    assert back.num_batches_tracked.item() == 2


def test_reset_parameters_restores_initial_state():
    bn = BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.fill_(2.0)
    bn(torch.randn(10, 3) + 4)
    bn.reset_parameters()
    fresh = BatchNorm1d(3)
    for key, value in fresh.state_dict().items():
        assert torch.equal(bn.state_dict()[key], value), key


@pytest.mark.parametrize("shape", list(SHAPES))
def test_gradcheck_passes(shape):
    small = (shape[0] // 2, *shape[1:])
    ours, _ = make_pair(shape)
    x = random_input(small, 5)
    assert torch.autograd.gradcheck(lambda inp, w, b: ours(inp), (x, ours.weight, ours.bias))
    assert torch.autograd.gradcheck(
        lambda inp, w, b: batch_norm(inp, None, None, w, b, training=True), (x, ours.weight, ours.bias)
    )


def test_backward_is_the_closed_form_not_autograd_through_the_forward():
    x = random_input((6, 3), 0)
    y = batch_norm(x, None, None, training=True)
    assert type(y.grad_fn).__name__ == "_BatchNormFunctionBackward"


def test_the_backward_pass_keeps_one_tensor_of_the_inputs_size_as_torchs_does():
    """x_hat is recomputed from x in the backward pass: a BN layer's saved activations cost what torch's do."""
    x = random_input((6, 3, 4), 0)
    y = BatchNorm1d(3).double()(x)
    saved = [t for t in y.grad_fn.saved_tensors if t is not None]
    assert sum(t.numel() for t in saved) == x.numel() + 4 * 3  # x, and mean, 1/std, weight, bias per channel


def test_functional_matches_torch_functional_and_updates_buffers_in_place():
    x = random_input((10, 4, 5), 7).detach()
    mean, var = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    mean_ref, var_ref = mean.clone(), var.clone()
    y = batch_norm(x, mean, var, training=True, momentum=0.3)
    y_ref = nn.functional.batch_norm(x, mean_ref, var_ref, training=True, momentum=0.3)
    assert max_err(y, y_ref) < TOL
    assert max_err(mean, mean_ref) < TOL and max_err(var, var_ref) < TOL
    assert not torch.equal(mean, torch.zeros(4, dtype=torch.float64)), "buffers were not updated"


def test_matches_torch_in_float32_to_float32_precision():
    x = torch.randn(64, 10) * 4 + 1
    ours, ref = BatchNorm1d(10), nn.BatchNorm1d(10)
    assert max_err(ours(x), ref(x)) < 1e-5


@pytest.mark.parametrize(
    "module, bad_shape, expected_words",
    [
        (BatchNorm1d(4), (1, 4), "more than one value per channel"),
        (BatchNorm2d(4), (1, 4, 1, 1), "more than one value per channel"),
        (BatchNorm1d(4), (8, 3), "C=4"),
        (BatchNorm2d(4), (8, 3, 5, 5), "C=4"),
        (BatchNorm1d(4), (8, 4, 2, 2), "2D (N, C) or 3D (N, C, L)"),
        (BatchNorm2d(4), (8, 4), "4D (N, C, H, W)"),
        (BatchNorm1d(4), (4,), "2D (N, C) or 3D (N, C, L)"),
    ],
)
def test_bad_input_raises_valueerror_naming_shapes(module, bad_shape, expected_words):
    with pytest.raises(ValueError) as info:
        module.train()(torch.randn(bad_shape))
    message = str(info.value)
    assert expected_words in message
    assert str(tuple(bad_shape)) in message, "the message must name the shape received"


def test_batch_of_one_is_fine_in_eval_mode():
    bn = BatchNorm1d(4).eval()
    assert bn(torch.randn(1, 4)).shape == (1, 4)


def test_functional_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        batch_norm(torch.randn(3), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        batch_norm(torch.randn(4, 3), None, None, training=False)
    with pytest.raises(ValueError, match=r"expected 3 channels"):
        batch_norm(torch.randn(4, 5), torch.zeros(3), torch.ones(3), training=True)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1d(0)


def test_every_public_name_is_exported_and_defined_where_it_is_documented():
    import importlib

    for name in bn_utils.__all__:
        obj = getattr(bn_utils, name)  # fails if __all__ names something the package does not have
        module = importlib.import_module(obj.__module__) if hasattr(obj, "__module__") else bn_utils
        assert name in getattr(module, "__all__", [name]), f"{name} is exported but not in {module.__name__}.__all__"
    assert {"BatchNorm1d", "BatchNorm2d", "batch_norm", "train", "check_range"} <= set(bn_utils.__all__)


def test_batch_norm_gradients_are_autograds_of_the_weighted_sum():
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    gamma = torch.rand(3, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(8, 3, dtype=torch.float64)
    ours = batch_norm_gradients(batch_norm, x, gamma, beta, upstream)
    theirs = batch_norm_gradients(F.batch_norm, x, gamma, beta, upstream)
    for got, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(ours[2], upstream.sum(0))  # dL/dβ is the upstream gradient summed over the batch
    with pytest.raises(ValueError, match="requires_grad"):
        batch_norm_gradients(batch_norm, x.detach(), gamma, beta, upstream)
    with pytest.raises(ValueError, match="shaped like x"):
        batch_norm_gradients(batch_norm, x, gamma, beta, upstream[:4])


# --------------------------------------------------------------------------------------------
# Behaviour a user of a drop-in relies on (issue 24): each compared with torch's own layer


@pytest.mark.parametrize("shape", [(0, 5), (0, 5, 7), (0, 5, 3, 6)])
def test_an_empty_batch_in_training_gives_an_empty_output_and_leaves_the_statistics_alone(shape):
    ours, ref = make_pair({2: (16, 5), 3: (8, 5, 7), 4: (4, 5, 3, 6)}[len(shape)])
    with torch.no_grad():
        ref.running_mean.fill_(0.5), ref.running_var.fill_(2.0)
    ours.load_state_dict(ref.state_dict())
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    y = ours(x)
    assert y.shape == shape
    y.sum().backward()
    assert ours.weight.grad is not None and torch.equal(ours.weight.grad, torch.zeros(5, dtype=torch.float64))
    ref(torch.zeros(shape, dtype=torch.float64))
    for key, value in ref.state_dict().items():  # running statistics unchanged, the batch counted (as torch)
        assert torch.equal(ours.state_dict()[key], value), key
    assert ours.running_mean.eq(0.5).all() and ours.num_batches_tracked.item() == 1


def test_eps_zero_is_refused_in_training_and_allowed_with_running_statistics():
    x = torch.randn(6, 3, dtype=torch.float64)
    for module in (BatchNorm1d(3, eps=0.0), nn.BatchNorm1d(3, eps=0.0)):  # both build
        with pytest.raises(ValueError, match="eps must be positive during training"):
            module.double()(x)
        assert module.eval()(x).shape == x.shape
    no_buffers = BatchNorm1d(3, eps=0.0, track_running_stats=False).eval()  # eval, but batch statistics
    with pytest.raises(ValueError, match="eps must be positive during training.*variance 0"):
        no_buffers(x)
    with pytest.raises(ValueError, match="eps must be positive during training"):
        batch_norm(x, None, None, training=True, eps=0.0)
    with pytest.raises(ValueError, match="eps must be non-negative and finite, got eps=-1.0"):
        BatchNorm1d(3, eps=-1.0).eval()(x.float())
    with pytest.raises(TypeError, match="eps must be a number, got str"):
        BatchNorm1d(3, eps="1e-5")


def test_a_state_dict_without_num_batches_tracked_loads_as_in_torch():
    """Checkpoints from before torch 0.4.1 have no num_batches_tracked: a state_dict without the
    version metadata loads with 0 batches seen; one that claims version 2 and lacks it is an error."""
    trained = nn.BatchNorm1d(4)
    trained(torch.randn(8, 4) * 3 + 1)
    old = {k: v for k, v in trained.state_dict().items() if k != "num_batches_tracked"}  # a plain dict
    for module in (BatchNorm1d(4), nn.BatchNorm1d(4)):
        module.num_batches_tracked.fill_(7)
        module.load_state_dict(old)
        assert torch.equal(module.running_mean, trained.running_mean)
        assert module.num_batches_tracked.item() == 7  # torch keeps the layer's own count
    assert BatchNorm1d(4).load_state_dict(old).missing_keys == []
    claims_v2 = trained.state_dict()
    del claims_v2["num_batches_tracked"]
    for module in (BatchNorm1d(4), nn.BatchNorm1d(4)):
        with pytest.raises(RuntimeError, match="Missing key.*num_batches_tracked"):
            module.load_state_dict(claims_v2)


@pytest.mark.parametrize("training", [True, False])
def test_track_running_stats_switched_off_on_a_built_layer_behaves_as_torch(training):
    """torch decides by whether the buffers exist: eval mode still normalizes with them, and no mode
    updates them once tracking is off."""
    ours, ref = make_pair((8, 5, 7))
    with torch.no_grad():
        ref.running_mean.uniform_(-1, 1), ref.running_var.uniform_(0.5, 2)
    ours.load_state_dict(ref.state_dict())
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    for module in (ours, ref):
        module.track_running_stats = False
        module.train(training)
    x = random_input((8, 5, 7), 4).detach()
    assert max_err(ours(x), ref(x)) < TOL
    for key, value in ref.state_dict().items():
        assert torch.equal(value, before[key]) and torch.equal(ours.state_dict()[key], value), key


def test_buffers_removed_and_tracking_switched_on_again_behave_as_torch():
    """Built without running statistics, then track_running_stats=True: no buffers, so nothing to update."""
    ours, ref = make_pair((16, 5), track_running_stats=False)
    x = random_input((16, 5), 3).detach()
    for module in (ours, ref):
        module.track_running_stats = True
    for training in (True, False):
        assert max_err(ours.train(training)(x), ref.train(training)(x)) < TOL
    assert ours.running_mean is None and ours.num_batches_tracked is None


def test_double_backward_raises_an_error_that_says_the_backward_is_differentiable_once():
    x = random_input((6, 3), 0)
    bn = BatchNorm1d(3).double()
    (grad,) = torch.autograd.grad((bn(x) ** 3).sum(), x, create_graph=True)  # first order: fine
    with pytest.raises(RuntimeError, match="hand-derived backward pass that is differentiable once: double backward"):
        grad.sum().backward()
    # a gradient penalty on a layer without affine parameters and a loss linear in y: once_differentiable
    # would give "element 0 of tensors does not require grad"; the error names the reason instead
    plain = BatchNorm1d(3, affine=False).double()
    weights = torch.randn(6, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad((plain(x) * weights).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once.*torch.nn.BatchNorm1d/2d"):
        (grad**2).sum().backward()
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.gradgradcheck(lambda inp: bn(inp), (x,))
    assert "Differentiable once" in BatchNorm1d.__mro__[1].__doc__ and "differentiable once" in BatchNorm2d.__doc__


@pytest.mark.parametrize("training, track", [(False, True), (True, False)])
def test_torch_func_first_order_agrees_with_torch_and_higher_order_raises_clearly(training, track):
    """Where torch.func works with torch's own layer (no in-place update of running buffers), first
    derivatives and vmap agree with it; jvp, hessian and grad of grad say why they cannot work."""
    from torch.func import grad, hessian, jacrev, jvp, vmap

    ours, ref = make_pair((8, 5, 7), track_running_stats=track)
    ours.train(training), ref.train(training)
    x = random_input((8, 5, 7), 6).detach()

    def loss(module):
        return lambda inp: (module(inp) ** 3).sum()

    torch.testing.assert_close(grad(loss(ours))(x), grad(loss(ref))(x))
    stacked = torch.stack([x, 2 * x])
    torch.testing.assert_close(vmap(ours)(stacked), vmap(ref)(stacked))
    ours_2d, ref_2d = (m.train(training) for m in make_pair((16, 5), track_running_stats=track))
    x_2d = random_input((16, 5), 7).detach()[:4]
    torch.testing.assert_close(jacrev(ours_2d)(x_2d), jacrev(ref_2d)(x_2d))
    for higher in (
        lambda f: jvp(ours, (x,), (torch.ones_like(x),)),
        lambda f: hessian(f)(x),
        lambda f: grad(lambda inp: grad(f)(inp).sum())(x),
    ):
        with pytest.raises(RuntimeError, match="differentiable once"):
            higher(loss(ours))


def test_torch_func_in_training_with_running_statistics_fails_as_torchs_own_layer():
    from torch.func import grad, replace_all_batch_norm_modules_, vmap

    ours, ref = make_pair((8, 5, 7))
    x = random_input((8, 5, 7), 6).detach()
    for module in (ours, ref):
        with pytest.raises(RuntimeError, match="in-place operation"):
            grad(lambda inp, m=module: m(inp).pow(3).sum())(x)
    with pytest.raises(RuntimeError, match="replace_all_batch_norm_modules_"):
        vmap(ours)(torch.stack([x, x]))
    for module in (ours, ref):  # torch's remedy works on ours too (it selects torch _BatchNorm instances)
        replace_all_batch_norm_modules_(module)
    assert ours.running_mean is None
    torch.testing.assert_close(vmap(ours)(torch.stack([x, 2 * x])), vmap(ref)(torch.stack([x, 2 * x])))


def test_the_drop_ins_are_torch_batch_norms_and_torch_utilities_accept_them():
    """isinstance(m, torch.nn.modules.batchnorm._BatchNorm): SyncBatchNorm conversion, SWA's update_bn,
    conv-BN fusion and weight-decay/freezing recipes find them. Batch renorm is deliberately not one."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torch.optim.swa_utils import update_bn

    from bn_utils.layers import BatchRenorm2d

    assert isinstance(BatchNorm1d(3), nn.modules.batchnorm._BatchNorm)
    assert isinstance(BatchNorm2d(3), nn.modules.batchnorm._BatchNorm)
    assert not isinstance(BatchNorm2d(3), nn.BatchNorm2d)
    assert not isinstance(BatchRenorm2d(3), nn.modules.batchnorm._BatchNorm)  # SyncBN would drop its correction

    ours = BatchNorm2d(3).double()
    ours(random_input((4, 3, 5, 6), 1).detach())
    model = nn.Sequential(nn.Conv2d(2, 3, 3).double(), ours, BatchRenorm2d(3).double())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(synced[1], nn.SyncBatchNorm) and isinstance(synced[2], BatchRenorm2d)
    for key, value in ours.state_dict().items():
        assert torch.equal(synced[1].state_dict()[key], value), key

    conv, bn = nn.Conv2d(2, 3, 3).double().eval(), BatchNorm2d(3).double()
    bn(random_input((4, 3, 5, 6), 2).detach() * 4 + 1)
    bn.eval()
    x = random_input((2, 2, 7, 7), 3).detach()
    assert max_err(fuse_conv_bn_eval(conv, bn)(x), bn(conv(x))) < TOL

    net, ref_net = nn.Sequential(BatchNorm1d(4)).double(), nn.Sequential(nn.BatchNorm1d(4)).double()
    loader = [random_input((10, 4), s).detach() for s in range(3)]
    update_bn(loader, net), update_bn(loader, ref_net)
    assert max_err(net[0].running_mean, ref_net[0].running_mean) < TOL
    assert max_err(net[0].running_var, ref_net[0].running_var) < TOL
