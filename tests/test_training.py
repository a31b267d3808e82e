"""Training loop, divergence handling, seeding, device choice, multi-seed runs."""

import math

import numpy as np
import pytest
import torch

from bn_utils import (
    History,
    evaluate,
    get_device,
    make_mlp,
    make_spirals,
    run_seeds,
    seed_everything,
    stack_metric,
    train,
)


def test_training_learns_digits_and_records_history(digits):
    seed_everything(0)
    model = make_mlp(64, 10, depth=2, width=64, norm="batch")
    h = train(model, digits, lr=0.1, epochs=5, batch_size=64)
    assert h.steps == 5 * h.steps_per_epoch == 5 * (len(digits.x_train) // 64)
    assert h.eval_steps == [0] + [h.steps_per_epoch * e for e in range(1, 6)]
    assert h.test_acc[0] < 0.3 and h.test_acc[-1] > 0.9
    assert np.mean(h.loss[-10:]) < 0.5 * np.mean(h.loss[:10])
    assert not h.diverged and h.wall_time > 0
    assert h.config["lr"] == 0.1 and h.config["steps"] == h.steps
    assert h.steps_to(0.9) is not None and h.steps_to(1.01) is None
    assert h.steps_to(h.test_loss[-1], metric="test_loss") <= h.steps


def test_same_seed_same_run_different_seed_different_run(digits):
    def run(seed):
        return run_seeds(lambda: make_mlp(64, 10, depth=1, width=32), digits, [seed], lr=0.05, steps=30, device="cpu")[
            0
        ]

    a, b, c = run(1), run(1), run(2)
    assert a.loss == b.loss
    assert a.loss != c.loss


def test_divergence_is_recorded_not_raised(digits):
    seed_everything(0)
    model = make_mlp(64, 10, depth=4, width=64, init_scale=3.0)
    h = train(model, digits, lr=1e4, steps=200)
    assert h.diverged and h.diverged_at is not None and h.diverged_at < 200
    assert h.steps == h.diverged_at and all(math.isfinite(v) for v in h.loss)


def test_eval_every_and_step_budget():
    data = make_spirals(points_per_class=100)
    seed_everything(0)
    h = train(make_mlp(2, 3, depth=2, width=16), data, lr=0.1, steps=25, batch_size=16, eval_every=10)
    assert h.steps == 25 and h.eval_steps == [0, 10, 20, 25]


def test_train_rejects_bad_arguments(digits):
    model = make_mlp(64, 10, depth=1, width=8)
    with pytest.raises(ValueError, match="exactly one of epochs= or steps="):
        train(model, digits, lr=0.1)
    with pytest.raises(ValueError, match="larger than the training set"):
        train(model, digits, lr=0.1, steps=1, batch_size=10_000)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        train(model, digits, lr=0.1, steps=1, optimizer="rmsprop")


def test_adam_and_momentum_options_train(digits):
    for kwargs in (dict(optimizer="adam", lr=1e-2), dict(optimizer="sgd", lr=0.05, momentum=0.9)):
        seed_everything(0)
        h = train(make_mlp(64, 10, depth=1, width=32), digits, epochs=2, **kwargs)
        assert h.test_acc[-1] > 0.8, kwargs


def test_evaluate_restores_mode_and_counts(digits):
    model = make_mlp(64, 10, depth=1, width=8, norm="batch").train()
    acc, loss = evaluate(model, digits.x_test, digits.y_test, batch_size=100)
    assert model.training and 0 <= acc <= 1 and loss > 0
    assert acc == pytest.approx((model.eval()(digits.x_test).argmax(1) == digits.y_test).float().mean().item())


def test_stack_metric_pads_stopped_runs_with_nan():
    a = History(loss=[3.0, 2.0, 1.0], eval_steps=[0, 2], test_acc=[0.1, 0.5])
    b = History(loss=[3.0], eval_steps=[0], test_acc=[0.2], diverged_at=1)
    steps, values = stack_metric([a, b], "loss")
    assert steps.tolist() == [1, 2, 3]
    assert values[0].tolist() == [3.0, 2.0, 1.0] and values[1, 0] == 3.0 and np.isnan(values[1, 1:]).all()
    steps, values = stack_metric([a, b], "test_acc")
    assert steps.tolist() == [0, 2] and np.isnan(values[1, 1])
    with pytest.raises(ValueError):
        stack_metric([], "loss")


def test_get_device_defaults_and_override(monkeypatch):
    monkeypatch.delenv("BN_COURSE_DEVICE", raising=False)
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("BN_COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("BN_COURSE_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            get_device()


def test_progress_bars_show_and_can_be_silenced(digits, capsys):
    run_seeds(lambda: make_mlp(64, 10, depth=1, width=8), digits, [0], lr=0.1, steps=5, device="cpu", progress=True)
    shown = capsys.readouterr().err
    assert "seeds" in shown and "lr=0.1" in shown
    run_seeds(lambda: make_mlp(64, 10, depth=1, width=8), digits, [0], lr=0.1, steps=5, device="cpu")
    assert capsys.readouterr().err == ""
