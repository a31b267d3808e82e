"""Interactive explorers (ipywidgets): each answers one "what if..." in well under a second."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .inference import running_stats_trace
from .plotting import (
    NORM_LABELS,
    PALETTE,
    color_for,
    plot_histories,
    plot_layer_profile,
    plot_percentiles,
    plot_running_stats,
)

__all__ = [
    "running_stats_explorer",
    "covariate_shift_explorer",
    "precompute_shift_runs",
    "sweep_explorer",
    "init_explorer",
    "batch_noise_explorer",
]


def _draw_running_stats(batch_size: int, momentum: float, cumulative: bool, steps: int = 200):
    trace = running_stats_trace(batch_size=batch_size, momentum=None if cumulative else momentum, steps=steps, seed=0)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    plot_running_stats(trace, ax=ax)
    mean_err, var_err = trace.final_relative_error()
    rule = "cumulative average" if cumulative else f"momentum {momentum:.3f}"
    ax.set_title(
        f"batch size {batch_size}, {rule}: final error {mean_err:.2f} std (mean), {100 * var_err:.0f}% (variance)",
        fontsize=10,
    )
    plt.show()
    return trace


def running_stats_explorer():
    """Sliders for batch size and momentum (and a cumulative-average switch): watch the running
    mean chase the true mean of a channel whose values are N(2, 3^2)."""
    import ipywidgets as widgets

    return widgets.interactive(
        _draw_running_stats,
        batch_size=widgets.IntSlider(value=32, min=2, max=256, step=2, description="batch size"),
        momentum=widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.1, description="momentum"),
        cumulative=widgets.Checkbox(value=False, description="momentum=None (cumulative)"),
        steps=widgets.fixed(200),
    )


def precompute_shift_runs(data, *, seed: int = 0, steps: int = 600, noise_levels=(0.5, 1.0, 2.0)) -> dict:
    """One run per setting for :func:`covariate_shift_explorer`: plain, BN, and noisy BN at
    each noise level (shift up to +/- level, scale between 1/(1+level) and 1+level)."""
    from .covariate_shift import covariate_shift_run

    runs = {
        ("none", 0.0): covariate_shift_run("none", data, seed=seed, steps=steps, ics_every=None),
        ("batch", 0.0): covariate_shift_run("batch", data, seed=seed, steps=steps, ics_every=None),
    }
    for level in noise_levels:
        runs[("batch", level)] = covariate_shift_run(
            "batch_noisy",
            data,
            seed=seed,
            steps=steps,
            ics_every=None,
            norm_kwargs={"max_shift": level, "max_scale": 1 + level},
        )
    return runs


def _draw_shift(runs: dict, layer: int, batch_norm: bool, noise: float, unit: int = 0):
    key = ("batch", noise) if batch_norm else ("none", 0.0)
    run, plain = runs[key], runs[("none", 0.0)]
    label = "plain" if not batch_norm else ("BN" if noise == 0 else f"noisy BN (level {noise:g})")
    color = color_for("none" if not batch_norm else ("batch" if noise == 0 else "batch_noisy"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    plot_percentiles(
        run.records[layer - 1], unit=unit, ax=left, color=color, title=f"{label}, hidden layer {layer}, unit {unit}"
    )
    for name, r, c in (("plain", plain, PALETTE["vermillion"]), (label, run, color)):
        right.plot(r.history.eval_steps, r.history.test_acc, color=c, label=name)
    right.set_xlabel("training step")
    right.set_ylabel("test accuracy")
    right.legend(loc="lower right")
    right.set_title(
        f"drift {run.drift(layer - 1):.2f}, jitter {run.jitter(layer - 1):.3f} (median over units)", fontsize=10
    )
    plt.show()


def covariate_shift_explorer(runs: dict):
    """Choose the hidden layer, BN on/off and the noise level; the percentile plot and the test
    accuracy redraw from ``runs`` (see :func:`precompute_shift_runs`), with no training."""
    import ipywidgets as widgets

    levels = sorted({level for _, level in runs})
    return widgets.interactive(
        _draw_shift,
        runs=widgets.fixed(runs),
        layer=widgets.Dropdown(options=[1, 2, 3], value=3, description="hidden layer"),
        batch_norm=widgets.Checkbox(value=True, description="batch norm"),
        noise=widgets.SelectionSlider(options=levels, value=levels[0], description="noise level"),
        unit=widgets.IntSlider(value=0, min=0, max=99, description="unit"),
    )


def _draw_sweep(sweep, value: float, batch_norm: bool):
    norm = "batch" if batch_norm else "none"
    runs = sweep.runs(norm, value)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    plot_histories({norm: runs}, "loss", ax=left, title=f"{NORM_LABELS[norm]}, {sweep.label} {value:g}", band="minmax")
    left.set_yscale("log")
    plot_histories({norm: runs}, "test_acc", ax=right)
    right.axhline(sweep.target, color=PALETTE["black"], linestyle="--", linewidth=1)
    right.set_ylim(0, 1)
    diverged = sum(h.diverged for h in runs)
    steps = sweep.median_steps_to_target(norm, value)
    target = f"{100 * sweep.target:.0f}%"
    reached = (
        f"{target} after {steps:.0f} steps (median)" if np.isfinite(steps) else f"median seed never reached {target}"
    )
    right.set_title(f"{diverged}/{len(runs)} seeds diverged; {reached}", fontsize=10)
    plt.show()


def sweep_explorer(sweep):
    """A slider over the swept setting (learning rate or initial weight scale) and a BN switch,
    over a precomputed :class:`bn_utils.sweeps.Sweep`: the training-loss and test-accuracy
    curves (bands over seeds) redraw instantly, with how many seeds diverged and how fast the
    target came."""
    import ipywidgets as widgets

    missing = [norm for norm in ("none", "batch") if norm not in sweep.norms]
    if missing:
        raise ValueError(f"the explorer needs a sweep of 'none' and 'batch'; this one lacks {missing}")
    return widgets.interactive(
        _draw_sweep,
        sweep=widgets.fixed(sweep),
        value=widgets.SelectionSlider(
            options=list(sweep.values), value=sweep.values[len(sweep.values) // 2], description=sweep.label
        ),
        batch_norm=widgets.Checkbox(value=True, description="batch norm"),
    )


def _draw_init(
    data,
    scale: float,
    batch_norm: bool,
    depth: int,
    activation: str,
    quantities: tuple[str, str] = ("activation_std", "update_ratio"),
):
    from .initialization import diagnose_init_scales

    norm = "batch" if batch_norm else "none"
    diagnostics = diagnose_init_scales(data, norm, [1.0, scale], depth=depth, activation=activation)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, quantity in zip(axes, quantities, strict=True):
        plot_layer_profile(diagnostics, quantity, ax=ax)
    axes[0].set_title(f"{NORM_LABELS[norm]}, {depth} {activation} layers")
    axes[1].set_title(
        f"loss at init: {diagnostics[scale].loss:.3g} (scale {scale:g}), {diagnostics[1.0].loss:.3g} (scale 1)"
    )
    plt.show()
    return diagnostics


def init_explorer(
    data,
    *,
    quantities: tuple[str, str] = ("activation_std", "update_ratio"),
    depth: int = 10,
    scale: float = 2.0,
    batch_norm: bool = False,
):
    """Sliders for the initial weight scale and the depth, a BN switch and the activation: two
    per-layer ``quantities`` (see :func:`bn_utils.plotting.plot_layer_profile`) at
    initialisation, computed live (one forward and backward pass) against the standard scale 1."""
    import ipywidgets as widgets

    return widgets.interactive(
        _draw_init,
        data=widgets.fixed(data),
        scale=widgets.FloatLogSlider(value=scale, base=10, min=-1, max=1, step=0.1, description="weight scale"),
        batch_norm=widgets.Checkbox(value=batch_norm, description="batch norm"),
        depth=widgets.IntSlider(value=depth, min=2, max=60, description="depth"),
        activation=widgets.Dropdown(options=["relu", "tanh"], value="relu", description="activation"),
        quantities=widgets.fixed(tuple(quantities)),
    )


def _draw_noise(inputs, batch_size: int, example: int, unit: int, draws: int = 300):
    import torch

    from .regularization import normalized_in_random_batches

    fixed, pool = inputs[example : example + 1], torch.cat([inputs[:example], inputs[example + 1 :]])
    values = normalized_in_random_batches(
        fixed, pool, batch_size, draws=draws, generator=torch.Generator().manual_seed(0)
    )[:, 0, unit].numpy()
    reference = normalized_in_random_batches(
        fixed, pool, len(pool) + 1, draws=1, generator=torch.Generator().manual_seed(0)
    )[0, 0, unit].item()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.hist(values, bins=30, color=PALETTE["blue"], alpha=0.8)
    ax.axvline(
        reference, color=PALETTE["black"], linestyle="--", linewidth=1.5, label="normalized with the whole training set"
    )
    ax.set_xlabel(f"BN output of example {example}, unit {unit}")
    ax.set_ylabel(f"count ({draws} random batches)")
    ax.set_title(f"batch size {batch_size}: std {values.std():.3f} around {values.mean():.2f}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    plt.show()
    return values


def batch_noise_explorer(data):
    """A batch-size slider (and the example and unit): the histogram of one example's BN output
    over 300 random batches, against its value when normalized with the whole training set."""
    import ipywidgets as widgets

    from .regularization import first_layer_inputs

    inputs = first_layer_inputs(data)
    return widgets.interactive(
        _draw_noise,
        inputs=widgets.fixed(inputs),
        batch_size=widgets.SelectionSlider(options=[2, 4, 8, 16, 32, 64, 128, 256], value=16, description="batch size"),
        example=widgets.IntSlider(value=0, min=0, max=len(inputs) - 1, description="example"),
        unit=widgets.IntSlider(value=0, min=0, max=inputs.shape[1] - 1, description="unit"),
        draws=widgets.fixed(300),
    )
