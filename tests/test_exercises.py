"""The exercise checkers: right answers pass, each named mistake is detected and named.

Every mistake a checker claims to diagnose has a test that feeds it a deliberately wrong
implementation and asserts that the message names that mistake.
"""

import ast
import contextlib
import io

import pytest
import torch

from bn_utils import exercises as ex


def _solutions():
    namespace = {"torch": torch}
    for exercise in ex.EXERCISES.values():
        exec(exercise.solution, namespace)
    return namespace


SOL = _solutions()


def dims_of(x):
    return [0, *range(2, x.dim())]


def pc(t, x):
    return t.reshape(1, -1, *([1] * (x.dim() - 2)))


def forward_with(*, dims=None, unbiased=False, eps_mode="inside", affine="both", stats_grad="both"):
    """A forward pass with one deliberate mistake switched on."""

    def forward(x, gamma, beta, eps=1e-5):
        d = dims_of(x) if dims is None else dims(x)
        mean = x.mean(dim=d, keepdim=True)
        if stats_grad in ("none", "var"):
            mean = mean.detach()
        var = x.var(dim=d, unbiased=unbiased, keepdim=True)
        if stats_grad in ("none", "mean"):
            var = var.detach()
        if eps_mode == "inside":
            x_hat = (x - mean) / torch.sqrt(var + eps)
        elif eps_mode == "outside":
            x_hat = (x - mean) / (torch.sqrt(var) + eps)
        elif eps_mode == "missing":
            x_hat = (x - mean) / torch.sqrt(var)
        else:  # divided by the variance
            x_hat = (x - mean) / (var + eps)
        g, b = pc(gamma, x), pc(beta, x)
        return {"both": g * x_hat + b, "swapped": b * x_hat + g, "none": x_hat, "no_beta": g * x_hat}[affine]

    return forward


FORWARD_MISTAKES = {
    "unbiased_variance_in_normalization": (forward_with(unbiased=True), "unbiased variance"),
    "eps_outside_sqrt": (forward_with(eps_mode="outside"), "eps is outside the square root"),
    "eps_missing": (forward_with(eps_mode="missing"), "eps is missing"),
    "divided_by_variance": (forward_with(eps_mode="variance"), "instead of the standard deviation"),
    "gamma_beta_swapped": (forward_with(affine="swapped"), "gamma and beta are swapped"),
    "affine_missing": (forward_with(affine="none"), "gamma and beta are not applied"),
    "beta_missing": (forward_with(affine="no_beta"), "beta is missing"),
    "per_example_statistics": (forward_with(dims=lambda x: list(range(1, x.dim()))), "that is layer norm"),
    "4d_over_n_only": (forward_with(dims=lambda x: [0]), "you normalized over N only"),
    "4d_instance_norm": (
        forward_with(dims=lambda x: [2, 3] if x.dim() == 4 else [0]),
        "that is instance norm",
    ),
    "4d_over_n_and_c": (forward_with(dims=lambda x: [0, 1] if x.dim() == 4 else [0]), "over N and C"),
    "4d_over_everything": (forward_with(dims=lambda x: list(range(x.dim()))), "over all of x at once"),
    "statistics_under_no_grad": (forward_with(stats_grad="none"), "the batch statistics carry no gradient"),
    "mean_detached": (forward_with(stats_grad="var"), "the batch mean carries no gradient"),
    "variance_detached": (forward_with(stats_grad="mean"), "the batch variance carries no gradient"),
}


@pytest.mark.parametrize("mistake", FORWARD_MISTAKES, ids=list(FORWARD_MISTAKES))
def test_check_forward_names_the_mistake(mistake):
    wrong, phrase = FORWARD_MISTAKES[mistake]
    with pytest.raises(ex.ExerciseFailed, match="Likely mistake") as info:
        ex.check_forward(wrong)
    assert phrase in str(info.value), str(info.value)


def test_check_forward_whole_function_under_no_grad():
    def forward(x, gamma, beta, eps=1e-5):
        with torch.no_grad():
            return SOL["bn_forward"](x, gamma, beta, eps)

    with pytest.raises(ex.ExerciseFailed, match="y carries no gradient.*torch.no_grad"):
        ex.check_forward(forward)


def test_check_forward_gamma_broadcast_along_width_in_4d():
    def forward(x, gamma, beta, eps=1e-5):
        d = dims_of(x)
        x_hat = (x - x.mean(dim=d, keepdim=True)) / torch.sqrt(x.var(dim=d, unbiased=False, keepdim=True) + eps)
        return gamma * x_hat + beta  # (C,) broadcasts along the last dimension, W

    with pytest.raises(ex.ExerciseFailed, match=r"raised RuntimeError.*reshaped to \(1, C, 1, 1\)"):
        ex.check_forward(forward)


def test_check_forward_nan_wrong_shape_and_dtype():
    with pytest.raises(ex.ExerciseFailed, match="NaN or inf"):
        ex.check_forward(lambda x, gamma, beta, eps: torch.full_like(x, float("nan")))
    with pytest.raises(ex.ExerciseFailed, match=r"y has shape \(8,\), expected \(8, 4\)"):
        ex.check_forward(lambda x, gamma, beta, eps: SOL["bn_forward"](x, gamma, beta, eps).sum(1))
    with pytest.raises(ex.ExerciseFailed, match="dtype torch.float32, expected torch.float64"):
        ex.check_forward(lambda x, gamma, beta, eps: SOL["bn_forward"](x, gamma, beta, eps).float())
    with pytest.raises(ex.ExerciseFailed, match="should be a torch.Tensor"):
        ex.check_forward(lambda x, gamma, beta, eps: SOL["bn_forward"](x, gamma, beta, eps).tolist())


def test_check_forward_unknown_mistake_reports_the_largest_error():
    def forward(x, gamma, beta, eps=1e-5):
        y = SOL["bn_forward"](x, gamma, beta, eps)
        return y + (torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape) == 5) * 0.5

    with pytest.raises(ex.ExerciseFailed, match=r"largest error 0.5 at index \(1, 1\).*hint\('forward'\)"):
        ex.check_forward(forward)


def backward_with(mistake):
    """The closed-form backward pass with one deliberate mistake."""

    def backward(dy, x, gamma, eps=1e-5):
        d = [0] if mistake == "4d_over_n_only" else dims_of(x)
        mean = x.mean(dim=d, keepdim=True)
        inv_std = torch.rsqrt(x.var(dim=d, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        g = dy if mistake == "no_gamma" else dy * pc(gamma, x)
        reduce = (lambda t: t.sum(dim=d, keepdim=True)) if mistake == "sums" else lambda t: t.mean(dim=d, keepdim=True)
        mean_term = 0 if mistake in ("no_mean_term", "no_projection") else reduce(g)
        var_term = 0 if mistake in ("no_var_term", "no_projection") else x_hat * reduce(g * x_hat)
        dx = inv_std * (g - mean_term - var_term)
        full = dims_of(x)
        dgamma = (dy * (x if mistake == "dgamma_x" else x_hat)).sum(dim=full)
        if mistake == "dgamma_gamma":
            dgamma = (dy * pc(gamma, x) * x_hat).sum(dim=full)
        dbeta = dy.mean(dim=full) if mistake == "dbeta_mean" else dy.sum(dim=full)
        return dx, dgamma, dbeta

    return backward


BACKWARD_MISTAKES = {
    "missing_mean_term": ("no_mean_term", "dx misses the mean term"),
    "missing_variance_term": ("no_var_term", "dx misses the variance term"),
    "missing_both_projection_terms": ("no_projection", "misses both projection terms"),
    "forgot_gamma": ("no_gamma", "off by the factor gamma"),
    "sums_instead_of_means": ("sums", "sums where the formula has means"),
    "4d_means_over_n_only": ("4d_over_n_only", "wrong axes for a 4-D input: your statistics run over N only (dim 0)"),
    "dgamma_uses_x": ("dgamma_x", "dgamma multiplies dy by x"),
    "dbeta_is_a_mean": ("dbeta_mean", "dbeta is the per-channel sum of dy"),
    "dgamma_times_gamma": ("dgamma_gamma", "not gamma * dy * x_hat"),
}


@pytest.mark.parametrize("mistake", BACKWARD_MISTAKES, ids=list(BACKWARD_MISTAKES))
def test_check_backward_names_the_mistake(mistake):
    option, phrase = BACKWARD_MISTAKES[mistake]
    with pytest.raises(ex.ExerciseFailed, match="Likely mistake") as info:
        ex.check_backward(backward_with(option))
    assert phrase in str(info.value), str(info.value)


def test_check_backward_wants_three_gradients():
    with pytest.raises(ex.ExerciseFailed, match=r"\(dx, dgamma, dbeta\) as a tuple, got tuple of length 2"):
        ex.check_backward(lambda dy, x, gamma, eps: SOL["bn_backward"](dy, x, gamma, eps)[:2])


def update_with(mistake):
    """The running-statistics update with one deliberate mistake."""

    def update(running_mean, running_var, x, momentum=0.1):
        d = [0] if mistake == "over_n_only" else dims_of(x)
        mean = x.mean(dim=d)
        var = x.var(dim=d, unbiased=mistake not in ("biased", "reversed_biased", "bessel_n"))
        if mistake == "bessel_n":
            var = var * x.shape[0] / (x.shape[0] - 1)
        if mistake == "std":
            var = var.sqrt()
        w = 1 - momentum if mistake in ("reversed", "reversed_biased") else momentum
        if mistake == "not_updated":
            return running_mean, running_var
        if mistake == "replaced":
            return mean, var
        return (1 - w) * running_mean + w * mean, (1 - w) * running_var + w * var

    return update


UPDATE_MISTAKES = {
    "biased_variance_stored": ("biased", "low by a factor (n−1)/n"),
    "reversed_momentum": ("reversed", "reversed momentum convention"),
    "reversed_momentum_and_biased_variance": (
        "reversed_biased",
        "on the *new* batch; and running_var is low: the batch variance you averaged in is low by a factor (n−1)/n",
    ),
    "not_updated": ("not_updated", "were not updated"),
    "momentum_ignored": ("replaced", "momentum is ignored"),
    "standard_deviation_stored": ("std", "holds a standard deviation"),
    "bessel_with_batch_size_in_4d": ("bessel_n", "Bessel's correction with the wrong n"),
}


@pytest.mark.parametrize("mistake", UPDATE_MISTAKES, ids=list(UPDATE_MISTAKES))
def test_check_running_update_names_the_mistake(mistake):
    option, phrase = UPDATE_MISTAKES[mistake]
    with pytest.raises(ex.ExerciseFailed, match="Likely mistake") as info:
        ex.check_running_update(update_with(option))
    assert phrase in str(info.value), str(info.value)


def test_check_running_update_4d_statistics_over_n_only():
    with pytest.raises(ex.ExerciseFailed, match=r"raised RuntimeError.*over N, H and W \(dims 0, 2, 3\), giving shape"):
        ex.check_running_update(update_with("over_n_only"))
    with pytest.raises(ex.ExerciseFailed, match=r"shape \(3, 5, 6\), expected \(3,\).*you reduced over N only"):
        ex.check_running_update(
            lambda rm, rv, x, m: (x.mean(0), x.var(0)) if x.dim() == 4 else SOL["bn_running_update"](rm, rv, x, m)
        )


def test_check_running_update_wants_the_new_statistics_returned():
    def update(running_mean, running_var, x, momentum):
        running_mean.mul_(1 - momentum).add_(momentum * x.mean(0))

    with pytest.raises(ex.ExerciseFailed, match=r"returned None; return the new statistics as \(new_mean, new_var\)"):
        ex.check_running_update(update)


def test_check_training_step_running_statistics_used_in_training_mode():
    def step(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
        shape = (1, -1, *([1] * (x.dim() - 2)))
        y = gamma.reshape(shape) * (x - running_mean.reshape(shape)) / torch.sqrt(running_var.reshape(shape) + eps)
        return (y + beta.reshape(shape), *SOL["bn_running_update"](running_mean, running_var, x, momentum))

    with pytest.raises(ex.ExerciseFailed, match="Likely mistake: running statistics used in training mode: you "):
        ex.check_training_step(step)


def test_check_training_step_updated_running_statistics_used_in_training_mode():
    def step(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
        new_mean, new_var = SOL["bn_running_update"](running_mean, running_var, x, momentum)
        shape = (1, -1, *([1] * (x.dim() - 2)))
        y = gamma.reshape(shape) * (x - new_mean.reshape(shape)) / torch.sqrt(new_var.reshape(shape) + eps)
        return y + beta.reshape(shape), new_mean, new_var

    with pytest.raises(
        ex.ExerciseFailed, match=r"running statistics used in training mode: you normalized with the \*updated\*"
    ):
        ex.check_training_step(step)


def test_check_training_step_passes_on_mistakes_of_its_parts():
    def step(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
        return SOL["bn_forward"](x, gamma, beta, eps), *update_with("biased")(running_mean, running_var, x, momentum)

    with pytest.raises(ex.ExerciseFailed, match=r"training step: .*low by a factor \(n−1\)/n"):
        ex.check_training_step(step)
    with pytest.raises(ex.ExerciseFailed, match="training step: y is wrong.*unbiased variance"):
        ex.check_training_step(
            lambda x, g, b, rm, rv, m, eps: (
                forward_with(unbiased=True)(x, g, b, eps),
                *SOL["bn_running_update"](rm, rv, x, m),
            )
        )


@pytest.mark.parametrize("exercise_id", list(ex.EXERCISES))
def test_reference_solutions_pass_their_checkers(exercise_id, capsys):
    getattr(ex, ex.EXERCISES[exercise_id].check)(SOL[ex.EXERCISES[exercise_id].signature.split("(")[0][4:]])
    assert capsys.readouterr().out.startswith("✓ ")


def test_checkers_print_one_line_when_right(capsys):
    ex.check_forward(SOL["bn_forward"])
    assert capsys.readouterr().out == "✓ forward pass: matches the reference on 6 cases\n"


def test_an_autograd_free_backward_also_passes():
    def backward(dy, x, gamma, eps=1e-5):  # via torch's own batch norm: any correct route passes
        x, gamma = x.clone().requires_grad_(), gamma.clone().requires_grad_()
        beta = torch.zeros_like(gamma, requires_grad=True)
        with torch.enable_grad():
            y = torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
            return torch.autograd.grad((y * dy).sum(), (x, gamma, beta))

    ex.check_backward(backward)


def test_a_stub_raises_not_implemented_through_the_checker():
    def stub(*args):
        raise NotImplementedError("Exercise forward: write your solution here")

    for check in (ex.check_forward, ex.check_backward, ex.check_running_update, ex.check_training_step):
        with pytest.raises(NotImplementedError, match="write your solution here"):
            check(stub)


def test_the_learners_exception_is_reported_with_the_case():
    def forward(x, gamma, beta, eps):
        raise KeyError("oops")

    with pytest.raises(ex.ExerciseFailed, match=r"raised KeyError: 'oops' \(on x of shape \(8, 4\), float64"):
        ex.check_forward(forward)


@pytest.mark.parametrize(
    "check", [ex.check_forward, ex.check_backward, ex.check_running_update, ex.check_training_step]
)
def test_checkers_reject_a_non_function(check):
    with pytest.raises(TypeError, match=r"expected your function .*got 3 of type int"):
        check(3)


def test_hint_and_solution(capsys):
    ex.hint("running_update")
    ex.hint("running_update", 2)
    ex.solution("forward")
    out = capsys.readouterr().out
    assert "(1 - momentum) * running" in out and "unbiased=True" in out and "def bn_forward" in out
    with pytest.raises(ValueError, match=r"exercise_id must be one of \['backward', 'forward'"):
        ex.hint("forwards")
    with pytest.raises(ValueError, match="level must be an integer from 1 to 2, got 3"):
        ex.hint("forward", 3)
    with pytest.raises(ValueError, match="exercise_id must be one of"):
        ex.solution("nope")


def test_compare_prediction(capsys):
    near = ex.compare_prediction("speed-up", 3.0, 2.6, relative=0.25, explanation="Because of X.")
    far = ex.compare_prediction("speed-up", 10, 2.6, tolerance=1, explanation="Because of X.")
    word = ex.compare_prediction("better placement", "before", "neither", explanation="They end equal.")
    out = capsys.readouterr().out
    assert near.close and not far.close and not word.close
    assert "you predicted 3, measured 2.6: close (within 25%).\nBecause of X." in out
    assert "off by 7.4 (not within 1)" in out
    assert "you predicted 'before', measured 'neither': not what happened." in out


def test_compare_prediction_arguments():
    with pytest.raises(NotImplementedError, match="write your prediction into the variable"):
        ex.compare_prediction("x", ..., 1.0, relative=0.1, explanation="e")
    with pytest.raises(ValueError, match="numbers need relative="):
        ex.compare_prediction("x", 1.0, 1.0, explanation="e")
    with pytest.raises(ValueError, match="give relative or tolerance, not both"):
        ex.compare_prediction("x", 1.0, 1.0, relative=0.1, tolerance=0.1, explanation="e")
    with pytest.raises(ValueError, match="relative must be a non-negative finite number, got -0.1"):
        ex.compare_prediction("x", 1.0, 1.0, relative=-0.1, explanation="e")
    with pytest.raises(TypeError, match="relative compares numbers"):
        ex.compare_prediction("x", "a", "b", relative=0.1, explanation="e")
    with pytest.raises(TypeError, match="explanation must be a non-empty string"):
        ex.compare_prediction("x", 1.0, 1.0, relative=0.1, explanation="")


# --------------------------------------------------------------------------------------------
# issue 24: errors and in-place changes explained in words, shapes, probes


def test_a_backward_pass_that_uses_autograd_is_told_the_check_runs_without_it_on_purpose():
    def backward(dy, x, gamma, eps=1e-5):
        x = x.clone().requires_grad_()
        y = SOL["bn_forward"](x, gamma, torch.zeros_like(gamma), eps)
        return (*torch.autograd.grad(y, x, dy), None, None)

    with pytest.raises(ex.ExerciseFailed, match=r"under torch.no_grad\(\), on purpose.*derived by hand") as info:
        ex.check_backward(backward)
    assert "of your function: `return (*torch.autograd.grad(y, x, dy), None, None)`" in str(info.value)  # no traceback


@pytest.mark.parametrize(
    "check, fn, name",
    [
        (ex.check_backward, lambda dy, x, g, eps: (*SOL["bn_backward"](dy, x, g, eps)[:2], g.add_(1)), "gamma"),
        (ex.check_backward, lambda dy, x, g, eps: (*SOL["bn_backward"](dy.mul_(1), x.unsqueeze_(0)[0], g, eps),), "x"),
        (
            ex.check_training_step,
            lambda x, g, b, rm, rv, m, eps: (
                SOL["bn_forward"](x, g, b, eps),
                *SOL["bn_running_update"](rm, rv, x.mul_(1.0).add_(0.5), m),
            ),
            "x",
        ),
        (ex.check_running_update, lambda rm, rv, x, m: (SOL["bn_running_update"](rm, rv, x, m), x.add_(1))[0], "x"),
    ],
    ids=["backward-gamma", "backward-x-shape", "step-x", "update-x"],
)
def test_changing_an_input_in_place_fails_even_when_the_numbers_are_right(check, fn, name):
    with pytest.raises(ex.ExerciseFailed, match=rf"changed its input {name} in place"):
        check(fn)


def test_the_running_statistics_may_be_updated_in_place_as_torch_does(capsys):
    def update(running_mean, running_var, x, momentum=0.1):
        new = SOL["bn_running_update"](running_mean, running_var, x, momentum)
        running_mean.copy_(new[0]), running_var.copy_(new[1])
        return running_mean, running_var

    ex.check_running_update(update)
    assert capsys.readouterr().out.startswith("✓ running-statistics update")


def test_a_transposed_result_is_called_transposed():
    with pytest.raises(ex.ExerciseFailed, match=r"y has shape \(4, 8\), expected \(8, 4\).*; transposed\?"):
        ex.check_forward(lambda x, g, b, eps: SOL["bn_forward"](x, g, b, eps).transpose(0, -1))


def test_errors_autograd_raises_on_the_learners_graph_are_explained():
    def inplace(x, gamma, beta, eps=1e-5):
        y = SOL["bn_forward"](x, gamma, beta, eps)
        s = torch.sigmoid(y)  # sigmoid saves its output for the backward pass
        s.mul_(2)
        return y + 0 * s

    with pytest.raises(ex.ExerciseFailed, match="modified by an inplace operation.*saved for the backward") as info:
        ex.check_forward(inplace)
    assert "anomaly detection" not in str(info.value)

    class Twice(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta, eps):
            return SOL["bn_forward"](x, gamma, beta, eps)

        @staticmethod
        def backward(ctx, dy):
            return dy, None

    with pytest.raises(ex.ExerciseFailed, match="returned 2 gradients, but its forward takes 4 inputs"):
        ex.check_forward(lambda x, g, b, eps: Twice.apply(x, g, b, eps))


def test_a_wrong_signature_is_explained():
    with pytest.raises(ex.ExerciseFailed, match=r"calls your function as forward\(x, gamma, beta, eps\)"):
        ex.check_forward(lambda x, gamma, beta: x)


def test_a_mistake_outside_the_catalogue_is_described_by_probes():
    """eps hard-coded to 1e-3 (not the default) and a channel mixed into its neighbour: no mistake of the
    catalogue reproduces them, the probes say what the function does."""

    def eps_fixed(x, gamma, beta, eps=1e-5):
        return SOL["bn_forward"](x, gamma, beta, 1e-3)

    with pytest.raises(ex.ExerciseFailed, match="What the checker measured: .*eps is ignored"):
        ex.check_forward(eps_fixed)

    def mixes(x, gamma, beta, eps=1e-5):
        return SOL["bn_forward"](x, gamma, beta, eps) + 0.01 * x.roll(1, dims=1)

    with pytest.raises(ex.ExerciseFailed, match="rescaling channel 0 of x changed the outputs of the other channels"):
        ex.check_forward(mixes)

    def momentum_fixed(running_mean, running_var, x, momentum=0.1):
        new_mean, new_var = SOL["bn_running_update"](running_mean, running_var, x, 0.2)
        return new_mean + 1e-3 * x.mean(), new_var

    with pytest.raises(ex.ExerciseFailed, match="the momentum is ignored"):
        ex.check_running_update(momentum_fixed)


def test_combined_mistakes_are_named_together_and_shown_where_both_show():
    def unbiased_and_eps_outside(x, gamma, beta, eps=1e-5):
        d = dims_of(x)
        return pc(gamma, x) * (x - x.mean(d, keepdim=True)) / (x.std(d, keepdim=True) + eps) + pc(beta, x)

    with pytest.raises(ex.ExerciseFailed, match=r"Likely mistakes: .*unbiased variance.*; and eps is outside"):
        ex.check_forward(unbiased_and_eps_outside)
    with pytest.raises(
        ex.ExerciseFailed, match=r"momentum is ignored.*with momentum=0.3.*low by a factor.*momentum=0.3\)"
    ):
        ex.check_running_update(lambda rm, rv, x, m: update_with("biased")(rm, rv, x, 0.1))


# --------------------------------------------------------------------------------------------
# the checkers never crash: hostile results and random programs


def _hostile_results():
    meta = torch.empty(8, 4, device="meta", dtype=torch.float64)

    def raises(error):
        def fn(*args):
            raise error

        return fn

    def recurse(*args):
        return recurse(*args)

    def lying(*args):
        class Fake:
            shape = args[0].shape
            dtype = args[0].dtype

        return Fake()

    return {
        "none": lambda *a: None,
        "int": lambda *a: 3,
        "str": lambda *a: "y",
        "empty-tuple": lambda *a: (),
        "dict": lambda *a: {"y": a[0]},
        "numpy": lambda *a: a[0].detach().numpy(),
        "float": lambda *a: 1.0,
        "generator": lambda *a: (t for t in a),
        "complex": lambda *a: a[0].detach().to(torch.complex128),
        "int-tensor": lambda *a: a[0].detach().long(),
        "bool-tensor": lambda *a: a[0] > 0,
        "scalar": lambda *a: a[0].sum(),
        "empty": lambda *a: a[0][:0],
        "extra-dim": lambda *a: a[0][None],
        "nan": lambda *a: a[0] * float("nan"),
        "inf": lambda *a: a[0] / 0,
        "meta": lambda *a: meta,
        "sparse": lambda *a: a[0].detach().to_sparse(),
        "nested": lambda *a: ((a[0],),),
        "four": lambda *a: (a[0],) * 4,
        "tuple-of-str": lambda *a: ("a", "b", "c"),
        "identity": lambda *a: a[0],
        "tuple-identity": lambda *a: (a[0], a[1], a[2]),
        "parameter": lambda *a: torch.nn.Parameter(a[0].detach().clone()),
        "lying-object": lying,
        "resize-input": lambda *a: a[2].detach().resize_(1),
        "value-error": raises(ValueError("bad")),
        "key-error": raises(KeyError("k")),
        "zero-division": raises(ZeroDivisionError("zero")),
        "assertion": raises(AssertionError("mine")),
        "stop-iteration": raises(StopIteration()),
        "torch-error": lambda *a: torch.cat([]),
        "recursion": recurse,
        "no-arguments": lambda: None,
        "grad-switched-off": lambda *a: (torch.set_grad_enabled(False), a[0] * 1)[1],
    }


CHECKS = [ex.check_forward, ex.check_backward, ex.check_running_update, ex.check_training_step]
REFERENCES = {  # each check's reference solution and the number of results it returns
    ex.check_forward: (SOL["bn_forward"], 1),
    ex.check_backward: (SOL["bn_backward"], 3),
    ex.check_running_update: (SOL["bn_running_update"], 2),
    ex.check_training_step: (SOL["bn_training_step"], 3),
}


def _placed(check, hostile):
    """The hostile function as it is, as every result of a tuple of the right length, and as the last
    result beside right ones: so the checks that want a tuple meet the hostile value inside one."""
    reference, arity = REFERENCES[check]
    yield hostile
    if arity > 1:
        yield lambda *a: (hostile(*a),) * arity

        def last(*a):
            value = hostile(*a)
            return (*reference(*(t.clone() if isinstance(t, torch.Tensor) else t for t in a))[:-1], value)

        yield last


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_hostile_results_fail_in_words_and_never_crash(check):
    for label, fn in [(label, placed) for label, h in _hostile_results().items() for placed in _placed(check, h)]:
        try:
            check(fn)
        except ex.ExerciseFailed as failure:
            message = str(failure)
            assert message and "Traceback" not in message and len(message) < 2500, (label, message)
            assert "the checker could not compare" not in message, (label, message)  # the last-resort net
        except Exception as error:  # a crash: what the learner would see as a raw traceback
            pytest.fail(f"{check.__name__} crashed on {label}: {type(error).__name__}: {error}")
        finally:
            torch.set_grad_enabled(True)


_UNARY = [
    torch.exp,
    torch.sqrt,
    torch.abs,
    torch.neg,
    torch.relu,
    torch.tanh,
    torch.log,
    lambda t: t.t(),
    lambda t: t.flip(0),
    lambda t: t.sum(0),
    lambda t: t.mean(),
    lambda t: t.reshape(-1),
    lambda t: t[:1],
    lambda t: t.var(0),
    lambda t: t.double(),
    lambda t: t.float(),
    lambda t: t.detach(),
    lambda t: t.unsqueeze(-1),
    lambda t: t.cumsum(0),
    lambda t: t.clamp(min=0),
]
_BINARY = [
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.maximum,
    lambda a, b: torch.cat([a, b]),
    lambda a, b: a @ b,
    lambda a, b: a.expand_as(b),
    lambda a, b: torch.stack([a, b]),
]


def _random_program(seed):
    """A learner function made of random torch operations on its arguments (it may raise anywhere)."""
    rng = __import__("random").Random(seed)
    steps = [
        (
            rng.random() < 0.5,
            rng.randrange(len(_UNARY)),
            rng.randrange(len(_BINARY)),
            rng.randrange(7),
            rng.randrange(7),
        )
        for _ in range(rng.randrange(1, 5))
    ]
    arity = rng.choice([1, 2, 3])

    def program(*args):
        values = [a for a in args if isinstance(a, torch.Tensor)]
        for unary, u, b, i, j in steps:
            a = values[i % len(values)]
            values.append(_UNARY[u](a) if unary else _BINARY[b](a, values[j % len(values)]))
        out = values[-3:]
        return out[-1] if arity == 1 else tuple(out[-arity:])

    return program


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_random_programs_never_crash_the_checker(check):
    import warnings

    crashes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(60):
            try:
                check(_random_program(seed))
            except ex.ExerciseFailed as failure:
                if "the checker could not compare" in str(failure):
                    crashes.append(f"seed {seed}: only the last-resort net caught it: {failure}")
            except Exception as error:
                crashes.append(f"seed {seed}: {type(error).__name__}: {error}")
    assert not crashes, crashes


# --------------------------------------------------------------------------------------------
# mutation test: every change of a reference solution that changes what it computes is caught


_OPERATOR_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_METHOD_SWAPS = {"mean": "sum", "sum": "mean", "sqrt": "rsqrt", "rsqrt": "sqrt", "var": "std"}


def _mutation_sites(tree):
    """(kind, node) for every place a mutation applies, in ast.walk order."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATOR_SWAPS:
            yield "operator", node
            yield "drop the right operand", node
        elif (
            isinstance(node, ast.keyword)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, bool)
        ):
            yield "flip", node
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            yield "constant", node
        elif isinstance(node, ast.Attribute) and node.attr in _METHOD_SWAPS:
            yield "method", node
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            yield "swap arguments", node
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) >= 2:
            yield "swap results", node


class _Mutate(ast.NodeTransformer):
    def __init__(self, target, kind):
        self.target, self.kind = target, kind

    def visit(self, node):
        node = self.generic_visit(node)
        if node is not self.target:
            return node
        if self.kind == "operator":
            node.op = _OPERATOR_SWAPS[type(node.op)]()
        elif self.kind == "drop the right operand":
            return node.left
        elif self.kind == "flip":
            node.value = ast.Constant(not node.value.value)
        elif self.kind == "constant":
            node.value = node.value + 1 if isinstance(node.value, int) else node.value * 2
        elif self.kind == "method":
            node.attr = _METHOD_SWAPS[node.attr]
        elif self.kind == "swap arguments":
            node.args[0], node.args[1] = node.args[1], node.args[0]
        else:
            node.value.elts[-2], node.value.elts[-1] = node.value.elts[-1], node.value.elts[-2]
        return node


def _mutants(source):
    for index, (kind, _) in enumerate(_mutation_sites(ast.parse(source))):
        tree = ast.parse(source)
        target = [node for _, node in _mutation_sites(tree)][index]
        code = ast.unparse(ast.fix_missing_locations(_Mutate(target, kind).visit(tree)))
        if code != ast.unparse(ast.parse(source)):
            yield f"{kind} at {ast.unparse(target) if kind != 'flip' else target.arg}", code


def _equivalent(fn, reference, exercise):
    """Does the mutant compute what the reference computes (or fail where it fails), on fresh inputs?"""
    g = torch.Generator().manual_seed(7)
    for shape, eps, momentum in [((5, 3), 0.3, 0.4), ((3, 2, 4, 5), 0.2, 0.7), ((7, 2), 1e-5, 0.1)]:
        x = 2 + torch.randn(shape, generator=g, dtype=torch.float64)
        gamma, beta = (
            1 + torch.rand(shape[1], generator=g, dtype=torch.float64),
            torch.rand(shape[1], generator=g, dtype=torch.float64),
        )
        rm, rv = (
            torch.rand(shape[1], generator=g, dtype=torch.float64),
            1 + torch.rand(shape[1], generator=g, dtype=torch.float64),
        )
        dy = torch.randn(shape, generator=g, dtype=torch.float64)
        args = {
            "forward": (x, gamma, beta, eps),
            "backward": (dy, x, gamma, eps),
            "running_update": (rm, rv, x, momentum),
            "training_step": (x, gamma, beta, rm, rv, momentum, eps),
        }[exercise]
        outputs = []
        for f in (fn, reference):
            try:
                with torch.no_grad():
                    out = f(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args))
                outputs.append(out if isinstance(out, tuple | list) else (out,))
            except Exception:
                outputs.append(None)
        mutant, ref = outputs
        if (mutant is None) != (ref is None):
            return False
        if mutant is not None and not (
            len(mutant) == len(ref)
            and all(
                isinstance(m, torch.Tensor) and m.shape == r.shape and torch.allclose(m, r, rtol=0, atol=1e-10)
                for m, r in zip(mutant, ref, strict=True)
            )
        ):
            return False
    return True


def test_mutants_of_the_reference_solutions_are_caught_and_never_crash_the_checker():
    """Mutation testing of the checkers: each reference solution is mutated one place at a time (an
    operator, a dropped term, a flipped flag, a constant, a method, two arguments or two results swapped).
    Every mutant that computes something else must fail its check, without a crash; most are named with a
    diagnosis rather than "does not match the reference" (mutants are mechanical, not learners' mistakes:
    many have no name, such as running_mean / momentum)."""
    import warnings

    survivors, crashes, killed, named = [], [], 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for exercise_id, exercise in ex.EXERCISES.items():
            check = getattr(ex, exercise.check)
            function_name = exercise.signature.split("(")[0][4:]
            for description, code in _mutants(exercise.solution):
                namespace = dict(SOL)
                try:
                    exec(code, namespace)
                except Exception:
                    continue
                mutant = namespace[function_name]
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        check(mutant)
                except ex.ExerciseFailed as failure:
                    killed += 1
                    named += ex.UNEXPLAINED not in str(failure) and "does not match the reference" not in str(failure)
                    continue
                except Exception as error:
                    crashes.append(f"{exercise_id}: {description}: {type(error).__name__}: {error}")
                    continue
                if not _equivalent(mutant, SOL[function_name], exercise_id):
                    survivors.append(f"{exercise_id}: {description}")
    print(f"mutants killed: {killed}, named: {named}")
    assert not crashes, crashes
    assert not survivors, survivors
    assert killed >= 90 and named >= 0.6 * killed  # measured: 99 killed, 68 of them named
