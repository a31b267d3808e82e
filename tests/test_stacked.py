"""The stacked trainer gives each model exactly what `train` gives it alone."""

import copy
from collections import OrderedDict
from dataclasses import replace

import numpy as np
import pytest
import torch

import bn_utils as bu
from bn_utils.stacked import (
    StackedMLP,
    evaluate_stacked,
    recomputable_norms,
    recompute_running_statistics,
    run_steps,
    set_running_statistics,
    train_stacked,
)


@pytest.fixture(scope="module")
def digits64():
    return bu.load_digits(dtype=torch.float64)


@pytest.fixture(scope="module")
def short_epochs(digits64):
    """The digits with 200 training examples: 3 batches of 64 an epoch and 8 examples left out, so
    that 10 steps cross three epoch boundaries (a new shuffle each) where the full set needs 63 steps."""
    return replace(digits64, x_train=digits64.x_train[:200], y_train=digits64.y_train[:200])


def build(seed, norm="batch", depth=3, width=24, dtype=torch.float64, **kw):
    bu.seed_everything(seed)
    return bu.make_mlp(64, 10, depth=depth, width=width, norm=norm, **kw).to(dtype)


NORMS = {  # name -> norm_kwargs: every norm the stack supports
    "none": {},
    "batch": {},
    "batch_scratch": {},
    "batch_ghost": {"ghost_batch_size": 8},
    "layer": {},
    "group": {"num_groups": 4},
}


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize(
    "optimizer,momentum,lrs",
    [("sgd", 0.0, [0.05, 0.3, 0.1]), ("sgd", 0.9, [0.01, 0.05, 0.02]), ("adam", 0.0, [1e-3, 1e-2, 3e-3])],
)
def test_each_stacked_model_trains_exactly_as_alone(short_epochs, norm, optimizer, momentum, lrs):
    seeds = [0, 1, 0]
    final = {}
    kw = {"norm_kwargs": NORMS[norm]}

    def keep_final(stack, step):
        if step == 10:
            final.update({i: stack.model(slot) for slot, i in enumerate(stack.ids)})

    stacked = train_stacked(
        [build(s, norm, **kw) for s in seeds],
        short_epochs,
        lrs=lrs,
        seeds=seeds,
        steps=10,
        optimizer=optimizer,
        momentum=momentum,
        eval_every=4,
        on_step=keep_final,
    )
    for i, (lr, seed, h) in enumerate(zip(lrs, seeds, stacked, strict=True)):
        model = build(seed, norm, **kw)
        alone = bu.train(
            model, short_epochs, lr=lr, steps=10, seed=seed, optimizer=optimizer, momentum=momentum, eval_every=4
        )
        np.testing.assert_allclose(h.loss, alone.loss, rtol=0, atol=1e-10)
        assert h.eval_steps == alone.eval_steps == [0, 4, 8, 10]
        np.testing.assert_allclose(h.test_loss, alone.test_loss, rtol=0, atol=1e-10)
        assert h.test_acc == alone.test_acc and h.train_acc == alone.train_acc
        assert h.config["lr"] == lr and h.config["seed"] == seed and h.config["stacked_with"] == 3
        for (key, a), b in zip(final[i].state_dict().items(), model.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=f"{key} differs")


@pytest.mark.parametrize("norm", ["none", "batch", "batch_ghost", "layer"])
@pytest.mark.parametrize(
    "optimizer,momentum,lrs",
    [("sgd", 0.0, [0.05, 0.3, 0.1]), ("sgd", 0.9, [0.01, 0.05, 0.02]), ("adam", 0.0, [1e-3, 1e-2, 3e-3])],
)
@pytest.mark.parametrize("dropout,weight_decay", [(0.0, 1e-2), (0.3, 0.0), (0.3, 1e-3)])
def test_weight_decay_and_dropout_train_exactly_as_alone(
    short_epochs, norm, optimizer, momentum, lrs, dropout, weight_decay
):
    """L2 as torch.optim applies it; each model's dropout masks from its own generator, as
    train() draws them from the global one seeded with the model's dropout seed."""
    seeds, dropout_seeds = [0, 1, 0], [5, 6, 7]
    kw = {"norm_kwargs": NORMS[norm], "dropout": dropout}
    final = {}

    def keep_final(stack, step):
        if step == 10:
            final.update({i: stack.model(slot) for slot, i in enumerate(stack.ids)})

    stacked = train_stacked(
        [build(s, norm, **kw) for s in seeds],
        short_epochs,
        lrs=lrs,
        seeds=seeds,
        steps=10,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        dropout_seeds=dropout_seeds,
        eval_every=4,
        on_step=keep_final,
    )
    for i, (lr, seed, h) in enumerate(zip(lrs, seeds, stacked, strict=True)):
        model = build(seed, norm, **kw)
        torch.manual_seed(dropout_seeds[i])
        alone = bu.train(
            model,
            short_epochs,
            lr=lr,
            steps=10,
            seed=seed,
            optimizer=optimizer,
            momentum=momentum,
            weight_decay=weight_decay,
            eval_every=4,
        )
        np.testing.assert_allclose(h.loss, alone.loss, rtol=0, atol=1e-10)
        np.testing.assert_allclose(h.test_loss, alone.test_loss, rtol=0, atol=1e-10)
        assert h.test_acc == alone.test_acc and h.train_acc == alone.train_acc
        assert h.config["weight_decay"] == weight_decay
        for (key, a), b in zip(final[i].state_dict().items(), model.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=f"{key} differs")


def test_dropout_masks_differ_between_models_and_follow_keep(digits64):
    models = [build(0, "none", dropout=0.5) for _ in range(3)]  # identical weights
    stack = StackedMLP(models, dropout_seeds=[1, 2, 1]).train()
    x = digits64.x_test[:16]
    logits = stack(x)
    assert not torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])
    stack.eval()
    torch.testing.assert_close(stack(x)[0], models[0].eval()(x), rtol=0, atol=1e-12)  # no dropout in eval mode
    fresh = StackedMLP(models, dropout_seeds=[1, 2, 1]).train()
    fresh(x)
    fresh.keep([1])
    torch.testing.assert_close(fresh.train()(x)[0], stack.train()(x)[1], rtol=0, atol=0)  # slot 1's generator moved
    with pytest.raises(ValueError, match="one dropout seed per model"):
        StackedMLP(models, dropout_seeds=[1])


@pytest.mark.parametrize("norm", ["none", "batch", "batch_ghost", "layer"])
def test_stacked_models_with_the_norm_after_the_activation_train_exactly_as_alone(short_epochs, norm):
    seeds, lrs = [0, 1], [0.1, 0.3]
    kw = {"norm_kwargs": NORMS[norm], "norm_position": "after"}
    stacked = train_stacked([build(s, norm, **kw) for s in seeds], short_epochs, lrs=lrs, seeds=seeds, steps=10)
    for lr, seed, h in zip(lrs, seeds, stacked, strict=True):
        alone = bu.train(build(seed, norm, **kw), short_epochs, lr=lr, steps=10, seed=seed)
        # float64; ghost BN after the ReLU parted by 1.8e-10 after 30 steps of the full set, 2 threads (reduction order)
        np.testing.assert_allclose(h.loss, alone.loss, rtol=0, atol=1e-9)
        assert h.test_acc == alone.test_acc
    before = train_stacked([build(0, norm, norm_kwargs=NORMS[norm])], short_epochs, lrs=[0.1], seeds=[0], steps=10)
    if norm != "none":  # the stack follows each block's order, not a fixed one
        assert before[0].loss != stacked[0].loss


def test_diverged_models_are_dropped_and_the_others_go_on():
    data = bu.load_digits()
    lrs, seeds = [0.05, 1e4, 0.1, 1e4], [0, 0, 1, 1]

    def make(seed, lr):  # the exploding ones start from large weights too
        return build(seed, "none", depth=4, width=64, dtype=torch.float32, init_scale=3.0 if lr > 1 else 1.0)

    stacked = train_stacked(
        [make(s, lr) for s, lr in zip(seeds, lrs, strict=True)], data, lrs=lrs, seeds=seeds, steps=60, eval_every=20
    )
    for lr, seed, h in zip(lrs, seeds, stacked, strict=True):
        alone = bu.train(make(seed, lr), data, lr=lr, steps=60, seed=seed, eval_every=20)
        assert h.diverged_at == alone.diverged_at
        assert h.steps == alone.steps and h.eval_steps == alone.eval_steps
        np.testing.assert_allclose(h.loss, alone.loss, rtol=1e-4, atol=1e-5)
    assert [h.diverged for h in stacked] == [False, True, False, True]


def test_stack_forward_matches_each_model_and_round_trips(digits64):
    models = [build(s) for s in range(3)]
    stack = StackedMLP(models)
    x = digits64.x_test[:32]
    for mode in (True, False):
        for m in models:
            m.train(mode)
        stack.train(mode)
        logits = stack(x)  # (B, features) inputs are shared by all models
        for j, m in enumerate(models):
            torch.testing.assert_close(logits[j], m(x), rtol=0, atol=1e-12)
    per_model = torch.stack([digits64.x_test[j : j + 16] for j in range(3)])
    stack.train()
    logits = stack(per_model)
    for j, m in enumerate(models):
        m.train()
        torch.testing.assert_close(logits[j], m(per_model[j]), rtol=0, atol=1e-12)
    stack.keep([2, 0])
    assert stack.ids == [2, 0] and len(stack) == 2
    for slot, original in enumerate([models[2], models[0]]):
        for (key, a), b in zip(stack.model(slot).state_dict().items(), original.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{key} differs")


@pytest.mark.parametrize("ghost_batch_size", [2, 4, 16])
def test_stacked_ghost_batches_match_ghost_batch_norm_outputs_and_running_statistics(digits64, ghost_batch_size):
    """All chunks in one call, the running statistics updated in closed form: as the module does chunk by chunk."""
    kw = {"norm_kwargs": {"ghost_batch_size": ghost_batch_size, "momentum": 0.3}}
    models = [build(s, "batch_ghost", **kw) for s in range(3)]
    stack = StackedMLP(models).train()
    for start in (0, 32):  # two steps, so the running statistics start from non-default values
        x = torch.stack([digits64.x_train[start + 50 * j : start + 50 * j + 32] for j in range(3)])
        logits = stack(x)
        for j, m in enumerate(models):
            torch.testing.assert_close(logits[j], m.train()(x[j]), rtol=0, atol=1e-12)
    for slot, m in enumerate(models):
        for (key, a), b in zip(stack.model(slot).state_dict().items(), m.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=f"{key} differs")


def test_forward_with_hidden_gives_each_blocks_output(digits64):
    models = [build(s) for s in range(2)]
    stack = StackedMLP(models).eval()
    x = digits64.x_test[:16]
    logits, hidden = stack.forward_with_hidden(x)
    torch.testing.assert_close(logits, stack(x), rtol=0, atol=0)
    assert len(hidden) == 3 and all(h.shape == (2, 16, 24) for h in hidden)
    for j, m in enumerate(models):
        m.eval()
        h = x
        for i, block in enumerate(m.blocks):
            h = block(h)
            torch.testing.assert_close(hidden[i][j], h, rtol=0, atol=1e-12)


def test_evaluate_stacked_matches_evaluate(digits64):
    models = [build(s) for s in range(2)]
    accuracy, loss = evaluate_stacked(StackedMLP(models), digits64.x_test, digits64.y_test, batch_size=100)
    for j, m in enumerate(models):
        acc_alone, loss_alone = bu.evaluate(m, digits64.x_test, digits64.y_test)
        assert accuracy[j].item() == pytest.approx(acc_alone, abs=1e-12)
        assert loss[j].item() == pytest.approx(loss_alone, abs=1e-10)


def test_eval_train_false_skips_training_accuracy_and_says_so(digits64):
    (h,) = train_stacked([build(0)], digits64, lrs=[0.1], seeds=[0], steps=10, eval_every=5, eval_train=False)
    assert h.eval_steps == [0, 5, 10] and len(h.test_acc) == 3 and h.train_acc == []
    with pytest.raises(ValueError, match="train_acc was not recorded"):
        h.steps_to(0.5, metric="train_acc")
    with pytest.raises(ValueError, match="train_acc was not recorded"):
        bu.stack_metric([h], "train_acc")


def test_stack_rejects_what_it_cannot_stack(digits64):
    with pytest.raises(ValueError, match="at least one model"):
        StackedMLP([])
    with pytest.raises(ValueError, match="not conv nets"):
        StackedMLP([bu.make_convnet()])
    with pytest.raises(ValueError, match="supports norm='none', 'batch'"):
        StackedMLP([bu.make_mlp(64, 10, norm="batch_noisy")])
    with pytest.raises(ValueError, match="model 1 differs in structure"):
        StackedMLP([build(0, width=24), build(0, width=32)])
    shuffled = build(0)
    shuffled.blocks[0] = torch.nn.Sequential(
        OrderedDict(act=shuffled.blocks[0].act, linear=shuffled.blocks[0].linear, norm=shuffled.blocks[0].norm)
    )
    with pytest.raises(ValueError, match="block 0 is act -> linear -> norm"):
        StackedMLP([shuffled])
    with pytest.raises(ValueError, match="momentum=None"):
        StackedMLP([bu.make_mlp(64, 10, norm="batch", norm_kwargs={"momentum": None})])
    stack = StackedMLP([build(0), build(1)])
    with pytest.raises(ValueError, match=r"expected inputs of shape \(2, batch, 64\)"):
        stack(torch.zeros(3, 8, 64, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 examples"):
        stack(torch.zeros(1, 64, dtype=torch.float64))
    with pytest.raises(IndexError, match="slot 2 out of range"):
        stack.model(2)
    ghost = StackedMLP([build(0, norm="batch_ghost", norm_kwargs={"ghost_batch_size": 8})])
    with pytest.raises(ValueError, match="does not split into ghost batches of 8"):
        ghost(torch.zeros(12, 64, dtype=torch.float64))


def test_train_stacked_rejects_bad_arguments(digits64):
    models = [build(0), build(1)]
    with pytest.raises(ValueError, match="one learning rate and one seed per model"):
        train_stacked(models, digits64, lrs=[0.1], seeds=[0, 1], steps=1)
    with pytest.raises(ValueError, match="exactly one of epochs= or steps="):
        train_stacked(models, digits64, lrs=[0.1, 0.1], seeds=[0, 1])
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        train_stacked(models, digits64, lrs=[0.1, 0.1], seeds=[0, 1], steps=1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="larger than the training set"):
        train_stacked(models, digits64, lrs=[0.1, 0.1], seeds=[0, 1], steps=1, batch_size=10_000)
    with pytest.raises(ValueError, match="weight_decay must be non-negative"):
        train_stacked(models, digits64, lrs=[0.1, 0.1], seeds=[0, 1], steps=1, weight_decay=-1e-3)


class PlainSGD:
    """An update rule of its own (bn_utils.stacked.StackedUpdate): SGD at one learning rate."""

    def __init__(self, lr):
        self.lr, self.calls, self.kept = lr, 0, []

    @torch.no_grad()
    def step(self, stack, grads):
        self.calls += 1
        for key, grad in grads.items():
            stack.params[key].sub_(self.lr * grad)

    def keep(self, slots):
        self.kept.append(list(slots))


def test_an_update_rule_of_its_own_trains_in_the_same_loop(digits64):
    """The same loop, batch order and evaluation: a rule doing SGD gives SGD's results to the bit."""
    runs = {}
    for optimizer in ("sgd", PlainSGD(0.1)):
        models = [build(seed) for seed in (0, 1)]
        runs[str(optimizer)] = train_stacked(
            models, digits64, lrs=[0.1, 0.1], seeds=[0, 1], steps=12, eval_every=4, optimizer=optimizer
        )
    sgd, own = runs.values()
    for a, b in zip(sgd, own, strict=True):
        assert a.loss == b.loss and a.test_acc == b.test_acc and a.eval_steps == b.eval_steps
    assert own[0].config["optimizer"] == "PlainSGD"
    with pytest.raises(TypeError, match="update rule with step"):
        train_stacked([build(0)], digits64, lrs=[0.1], seeds=[0], steps=2, optimizer=object())
    with pytest.raises(ValueError, match="momentum and weight_decay"):
        train_stacked([build(0)], digits64, lrs=[0.1], seeds=[0], steps=2, optimizer=PlainSGD(0.1), momentum=0.9)


def test_a_diverged_model_can_stay_in_the_stack_without_touching_the_others():
    data = bu.load_digits()
    models = [bu.make_mlp(64, 10, depth=4, width=32) for _ in range(3)]
    rule = PlainSGD(0.05)
    with torch.no_grad():
        models[1].head.weight.fill_(float("nan"))  # NaN from the first step
    kept = train_stacked(models, data, lrs=[0.05] * 3, seeds=[0, 1, 2], steps=6, optimizer=rule, drop_diverged=False)
    assert kept[1].diverged_at == 0 and len(kept[1].loss) == 6 and all(np.isnan(kept[1].loss))
    assert rule.kept == [] and rule.calls == 6, "nobody left the stack"
    alone = train_stacked([models[0], models[2]], data, lrs=[0.05] * 2, seeds=[0, 2], steps=6, optimizer=PlainSGD(0.05))
    assert [kept[0].loss, kept[2].loss] == [alone[0].loss, alone[1].loss], "the others train as without it"


def test_sorted_batches_go_through_the_same_loop_as_the_conv_nets(digits64):
    """train_stacked draws batches as the conv-net stack does (the one step loop, run_steps): with
    order="sorted" each model of a stack trains as it does alone, on class-sorted batches."""
    both = train_stacked([build(0), build(1)], digits64, lrs=[0.1, 0.1], seeds=[0, 1], steps=6, order="sorted")
    for i, seed in enumerate([0, 1]):
        alone = train_stacked([build(seed)], digits64, lrs=[0.1], seeds=[seed], steps=6, order="sorted")
        assert both[i].loss == pytest.approx(alone[0].loss, rel=0, abs=1e-12)
    shuffled = train_stacked([build(0)], digits64, lrs=[0.1], seeds=[0], steps=6)
    assert both[0].loss[0] != pytest.approx(shuffled[0].loss[0], abs=1e-3), "a different first batch"
    with pytest.raises(ValueError, match="order must be one of"):
        train_stacked([build(0)], digits64, lrs=[0.1], seeds=[0], steps=2, order="random")
    stack = StackedMLP([build(0)])
    with pytest.raises(ValueError, match="divergence must be one of"):
        run_steps(stack, digits64, seeds=[0], batch_size=8, steps=1, loss=None, update=None, divergence="stop")
    with pytest.raises(ValueError, match="needs keep"):
        run_steps(stack, digits64, seeds=[0], batch_size=8, steps=1, loss=None, update=None)


# --- recomputing running statistics: one function for modules and stacks ---


def _batch_norms(model):
    """Every batch norm of ``model`` that keeps running statistics, found by type and not by
    recomputable_norms (the function under test), so that a batch norm it leaves out is not left
    out of the reference too."""
    return [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    ]


def _batch_norm_reference(model, x):
    """What recompute_running_statistics must give ``model`` (a module): its batch norms in training
    mode with momentum 1, everything else (dropout, a ghost batch norm's chunking) in eval mode."""
    reference = copy.deepcopy(model).eval()
    for m in _batch_norms(reference):
        m.train()
        m.momentum = 1.0
    with torch.no_grad():
        reference(x)
    return reference


@pytest.mark.parametrize(
    "norm,kw", [("batch", {}), ("batch_scratch", {}), ("batch_ghost", {"ghost_batch_size": 8}), ("batch_noisy", {})]
)
@pytest.mark.parametrize("dropout", [0.0, 0.5])
@pytest.mark.parametrize("training", [True, False])
def test_recompute_gives_a_module_the_statistics_of_one_batch_with_dropout_off(digits64, norm, kw, dropout, training):
    model = build(0, norm=norm, depth=3, norm_kwargs=kw, dropout=dropout).train(training)
    x = digits64.x_train[:96]
    reference = _batch_norm_reference(model, x)
    expected = reference.state_dict()
    modes = [m.training for m in model.modules()]
    assert recompute_running_statistics(model, x) is model
    assert [m.training for m in model.modules()] == modes  # every module's mode restored
    state = model.state_dict()
    assert any(key.endswith("running_var") for key in state)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    checked = _batch_norms(model)
    assert len(checked) == 3, "one batch norm per hidden block (a ghost or noisy batch norm's inner one)"
    for got, want in zip(checked, _batch_norms(reference), strict=True):
        assert got.momentum == 0.1  # momenta restored
        assert torch.equal(got.running_mean, want.running_mean) and torch.equal(got.running_var, want.running_var)
    first = model.blocks[0]
    pre = first.linear(x)
    bn = bu.stacked.recomputable_norms(model)[0]  # a ghost batch norm's too: the whole batch's statistics
    torch.testing.assert_close(bn.running_mean, pre.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(bn.running_var, pre.var(0), rtol=0, atol=1e-12)
    if norm == "batch_ghost":
        assert first.norm.ghost_batch_size == 8


def test_the_reference_finds_a_batch_norm_that_recomputable_norms_leaves_out(digits64, monkeypatch):
    """The tests above would miss a recompute that skips a batch norm if their reference skipped it
    too: an injected recomputable_norms that forgets the last batch norm makes them fail."""
    model, x = build(0), digits64.x_train[:96]
    everything = bu.stacked.recomputable_norms
    monkeypatch.setattr(bu.stacked, "recomputable_norms", lambda m: everything(m)[:-1])
    reference = _batch_norm_reference(model, x)
    recompute_running_statistics(model, x)
    [*rest, last], [*expected, wanted] = _batch_norms(model), _batch_norms(reference)
    assert all(torch.equal(a.running_var, b.running_var) for a, b in zip(rest, expected, strict=True))
    assert not torch.equal(last.running_var, wanted.running_var), "the forgotten batch norm kept its statistics"


@pytest.mark.parametrize("norm,kw", [("batch", {}), ("batch_scratch", {}), ("batch_ghost", {"ghost_batch_size": 8})])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
@pytest.mark.parametrize("training", [True, False])
def test_recompute_gives_a_stack_what_it_gives_each_model_alone(digits64, norm, kw, dropout, training):
    models = [build(seed, norm=norm, norm_kwargs=kw, dropout=dropout) for seed in (0, 1, 2)]
    stack = StackedMLP(models, dropout_seeds=[10, 11, 12]).train(training)
    fresh = StackedMLP(models, dropout_seeds=[10, 11, 12])
    x = digits64.x_train[:96]
    assert recompute_running_statistics(stack, x) is stack
    assert stack.training == training
    for slot, model in enumerate(models):
        expected = _batch_norm_reference(model, x).state_dict()
        got = stack.model(slot).state_dict()
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-12, atol=1e-12, msg=key)
    template = stack._template
    assert all(m.momentum == 0.1 for m in _batch_norms(template))
    assert all(m.p == dropout for m in template.modules() if isinstance(m, torch.nn.Dropout))
    assert all(m.ghost_batch_size == 8 for m in template.modules() if isinstance(m, bu.layers.GhostBatchNorm))
    # no dropout mask was drawn: the next training pass draws the masks a fresh stack draws first
    stack.buffers.update({k: v.clone() for k, v in fresh.buffers.items()})
    with torch.no_grad():
        assert torch.equal(stack.train()(x), fresh.train()(x))


def test_set_running_statistics_is_recompute_for_a_stack(digits64):
    models = [build(seed) for seed in (0, 1)]
    one, other = StackedMLP(models).eval(), StackedMLP(models).eval()
    x = digits64.x_train[:64]
    assert set_running_statistics(one, x) is None and not one.training
    recompute_running_statistics(other, x)
    for key, value in one.buffers.items():
        assert torch.equal(value, other.buffers[key]), key
    with pytest.raises(TypeError, match="StackedMLP"):
        set_running_statistics(models[0], x)


def test_recompute_leaves_batch_renorm_alone_and_lists_only_batch_norms(digits64):
    renorm = bu.make_convnet(1, 10, channels=(4, 6), norm="batch_renorm")
    assert recomputable_norms(renorm) == []  # it derives from _NormBase, not _BatchNorm
    with pytest.raises(ValueError, match="no batch norm"):
        recompute_running_statistics(renorm, torch.randn(4, 1, 8, 8))
    mixed = torch.nn.Sequential(
        torch.nn.Linear(64, 8), bu.layers.BatchRenorm1d(8), torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8)
    ).double()
    assert [type(m) for m in recomputable_norms(mixed)] == [torch.nn.BatchNorm1d]
    before = {k: v.clone() for k, v in mixed[1].state_dict().items()}
    recompute_running_statistics(mixed, digits64.x_train[:32])
    assert all(torch.equal(v, mixed[1].state_dict()[k]) for k, v in before.items())  # renorm untouched
    assert not torch.equal(mixed[3].running_var, torch.ones(8, dtype=torch.float64))
    untracked = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8, track_running_stats=False))
    assert recomputable_norms(untracked) == []


def test_recompute_rejects_bad_input_clearly(digits64):
    x = digits64.x_train[:8]
    with pytest.raises(TypeError, match="torch.nn.Module or a bn_utils.stacked.StackedMLP"):
        recompute_running_statistics("model", x)
    with pytest.raises(TypeError, match="torch.nn.Module or a bn_utils.stacked.StackedMLP"):
        recomputable_norms([build(0)])
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor"):
        recompute_running_statistics(build(0), x.tolist())
    with pytest.raises(ValueError, match="no batch norm"):
        recompute_running_statistics(build(0, norm="layer"), x)
    with pytest.raises(ValueError, match="no batch norm"):
        recompute_running_statistics(StackedMLP([build(0, norm="layer")]), x)
    stack = StackedMLP([build(0), build(1)])
    with pytest.raises(ValueError, match="at least 2 examples"):
        recompute_running_statistics(stack, x[:1])
    with pytest.raises(ValueError, match=r"a stack takes inputs \(batch, features\)"):
        recompute_running_statistics(stack, x[0])
    with pytest.raises(ValueError, match=r"a stack takes inputs \(batch, features\)"):
        recompute_running_statistics(stack, x.reshape(1, 1, *x.shape))
    with pytest.raises(ValueError, match=r"expected inputs of shape \(2, batch, 64\)"):
        recompute_running_statistics(stack, torch.zeros(3, 8, 64, dtype=torch.float64))
