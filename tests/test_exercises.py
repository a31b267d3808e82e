"""The exercise checkers: right answers pass, each named mistake is detected and named.

Every mistake a checker claims to diagnose has a test that feeds it a deliberately wrong
implementation and asserts that the message names that mistake.
"""

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
