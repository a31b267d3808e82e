"""One house style for every figure: colour-blind-safe colours, labelled axes, bands over seeds.

Plot helpers take results (histories, arrays), never models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from .style import (
    CYCLE,
    NORM_COLORS,
    NORM_LABELS,
    PALETTE,
    color_for,
    plot_band,
    plot_histories,
    publish,
    save_figure,
    use_house_style,
)
from .training import stack_metric

__all__ = [
    "PALETTE",
    "NORM_COLORS",
    "use_house_style",
    "color_for",
    "plot_band",
    "plot_histories",
    "plot_running_stats",
    "plot_mode_accuracy",
    "plot_placement",
    "plot_percentiles",
    "plot_distribution_snapshots",
    "plot_layer_bars",
    "plot_layer_profile",
    "plot_gradient_growth",
    "plot_batch_noise",
    "plot_generalization",
    "plot_estimates",
    "plot_sweep",
    "plot_landscape",
    "plot_layer_dynamics",
    "plot_dynamics_profile",
    "publish",
    "save_figure",
]

SWEEP_LABELS = {
    "loss": "final training loss (last epoch)",
    "test_acc": "final test accuracy",
    "test_loss": "final test loss",
}
LANDSCAPE_LABELS = {
    "loss_range": "loss range along the gradient",
    "gradient_change": "‖∇L(w) − ∇L(w − η∇L)‖",
    "beta_smoothness": "effective β-smoothness",
}
PROFILE_LABELS = {
    "activation_std": "activation std",
    "gradient_norm": "‖∂L/∂W‖",
    "update_ratio": "update ratio lr·‖∂L/∂W‖ / ‖W‖",
}


def plot_running_stats(trace, *, ax=None, label: str = ""):
    """The batch means (dots), the running mean (line) and the true mean (dashed) over steps,
    from a :class:`bn_utils.inference.RunningStatsTrace`; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    steps = np.arange(1, len(trace.batch_mean) + 1)
    ax.plot(steps, trace.batch_mean, ".", color=PALETTE["orange"], alpha=0.5, markersize=4, label="batch mean")
    ax.plot(steps, trace.running_mean, color=PALETTE["blue"], label=f"running mean{label}")
    ax.axhline(trace.true_mean, color=PALETTE["black"], linestyle="--", linewidth=1, label="true mean")
    ax.set_xlabel("training step")
    ax.set_ylabel("estimate of the channel mean")
    ax.legend(loc="lower right")
    return ax


def plot_mode_accuracy(
    results: Mapping[str, np.ndarray], *, ax=None, title: str | None = None, orders: Sequence[str] | None = None
):
    """Test accuracy in training mode against the prediction batch size, with the eval-mode
    accuracy as a reference band; ``results`` as returned by
    :func:`bn_utils.inference.forgotten_eval_study`. Bars are mean +/- std over seeds, one
    group per order of the test set in ``orders`` (default: every order in ``results``)."""
    from .inference import ORDERS

    present = [order for order, prefix in ORDERS.items() if any(k.startswith(prefix + "@") for k in results)]
    orders = present if orders is None else list(orders)
    if not orders or any(order not in present for order in orders):
        raise ValueError(f"orders must be some of {present} (the orders in these results), got {orders}")
    if ax is None:
        _, ax = plt.subplots()
    sizes = list(dict.fromkeys(k.split("@", 1)[1] for k in results if k.split("@", 1)[0] in ORDERS.values()))
    styles = {
        "shuffled": (PALETTE["vermillion"], "training mode (forgot model.eval())"),
        "sorted": (PALETTE["purple"], "training mode, test set sorted by class"),
    }
    if len(orders) > 1:
        styles["shuffled"] = (PALETTE["vermillion"], "training mode, test set shuffled")
    width = 0.8 / len(orders)
    for i, order in enumerate(orders):
        keys = [f"{ORDERS[order]}@{size}" for size in sizes]
        shown = [j for j, key in enumerate(keys) if key in results]
        offset = (i - (len(orders) - 1) / 2) * width
        ax.bar(
            [j + offset for j in shown],
            [100 * np.mean(results[keys[j]]) for j in shown],
            width=width if len(orders) > 1 else 0.8,
            yerr=[100 * np.std(results[keys[j]]) for j in shown],
            capsize=4,
            color=styles[order][0],
            label=styles[order][1],
        )
    eval_mean, eval_std = 100 * np.mean(results["eval"]), 100 * np.std(results["eval"])
    ax.axhspan(eval_mean - eval_std, eval_mean + eval_std, color=PALETTE["blue"], alpha=0.25, linewidth=0)
    ax.axhline(eval_mean, color=PALETTE["blue"], label="eval mode (running statistics)")
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_xlabel("examples predicted together (batch size)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_placement(study, *, axes=None, lr: float | None = None):
    """Three panels from a :class:`bn_utils.placement.PlacementStudy`: test accuracy over
    training at ``lr`` (default: the study's first learning rate), the steps to the target
    accuracy against the learning rate (median line, one dot per seed) and the final test
    accuracy against the learning rate (the same). Returns the axes."""
    from .placement import PLACEMENT_LABELS

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    if len(axes) != 3:
        raise ValueError(f"plot_placement draws three panels; got {len(axes)} axes")
    lr = study.lrs[0] if lr is None else lr
    colors = {"before": NORM_COLORS["batch"], "after": PALETTE["orange"]}
    curves, speed, final = axes
    for position, label in PLACEMENT_LABELS.items():
        steps, values = stack_metric(study.runs(position, lr), "test_acc")
        plot_band(curves, steps, 100 * values, label=label, color=colors[position])
        nudge = 0.96 if position == "before" else 1.04  # side by side, not on top of each other
        for ax, values, scale in (
            (speed, study.steps_to_target(position), 1),
            (final, study.final_accuracy(position), 100),
        ):
            medians = np.median(values, axis=1)  # never reached (inf) or diverged (NaN): not drawn
            medians, values = (np.where(np.isfinite(v), v, np.nan) for v in (medians, values))
            ax.plot(study.lrs, scale * medians, color=colors[position], marker="o", label=label)
            for lr_value, row in zip(study.lrs, values, strict=True):
                ax.plot([lr_value * nudge] * len(row), scale * row, ".", color=colors[position], alpha=0.5)
    curves.axhline(100 * study.target, color="grey", linestyle=":", linewidth=1.5)
    curves.set(xlabel="training step", ylabel="test accuracy (%)", title=f"learning rate {lr:g}")
    curves.set_ylim(max(0.0, curves.get_ylim()[0]), 100)
    curves.legend(loc="lower right")
    for ax in (speed, final):
        ax.set_xscale("log")
        ax.set_xticks(study.lrs, [f"{v:g}" for v in study.lrs])
        ax.minorticks_off()
        ax.set_xlabel("learning rate")
    speed.set(ylabel=f"steps to {100 * study.target:g}% test accuracy", title="speed (median and seeds)")
    speed.set_ylim(0, None)
    final.set(ylabel="final test accuracy (%)", title="end of training (median and seeds)")
    return axes


def plot_percentiles(record, *, unit: int = 0, ax=None, color: str | None = None, title: str | None = None):
    """The 15th, 50th and 85th percentiles of one unit's input over training, as in Figure 1
    (b, c) of the BN paper, from a :class:`bn_utils.probes.ActivationRecord`; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    color = color or PALETTE["blue"]
    low, mid, high = (record.percentiles[p][:, unit] for p in (15, 50, 85))
    ax.fill_between(record.steps, low, high, color=color, alpha=0.25, linewidth=0, label="15th to 85th")
    ax.plot(record.steps, mid, color=color, label="median (50th)")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"input to sigmoid unit {unit}")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return ax


def plot_distribution_snapshots(record, *, unit: int = 0, at: Sequence[int] = (0, -1), ax=None):
    """One unit's input distribution at a few recorded moments, drawn as Gaussians with the
    recorded mean and standard deviation (``at`` indexes the records); returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    means, stds = record.mean[list(at), unit], record.std[list(at), unit]
    grid = np.linspace((means - 3 * stds).min(), (means + 3 * stds).max(), 300)
    for i, (index, mu, sd) in enumerate(zip(at, means, stds, strict=True)):
        density = np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        ax.plot(grid, density, color=CYCLE[i % len(CYCLE)], label=f"after {record.steps[index]} steps")
        ax.fill_between(grid, density, color=CYCLE[i % len(CYCLE)], alpha=0.15, linewidth=0)
    ax.set_xlabel(f"input to unit {unit}")
    ax.set_ylabel("density (Gaussian fit)")
    ax.legend()
    return ax


def plot_layer_bars(values: Mapping[str, np.ndarray], *, ax=None, ylabel: str = "", layer_names=None):
    """Grouped bars: one group per layer, one bar per label; ``values[label]`` is an array
    (runs, layers) whose mean is the bar and std the error bar; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    width = 0.8 / len(values)
    for i, (label, array) in enumerate(values.items()):
        array = np.atleast_2d(array)
        x = np.arange(array.shape[1]) + (i - (len(values) - 1) / 2) * width
        ax.bar(x, array.mean(0), width, yerr=array.std(0), capsize=3, color=color_for(label, i), label=label)
    layers = array.shape[1]
    ax.set_xticks(range(layers), layer_names or [f"layer {k + 1}" for k in range(layers)])
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def plot_sweep(sweep, metric: str = "test_acc", *, ax=None, title: str | None = None, mark: str = "largest"):
    """Final ``metric`` against the swept setting, one line per norm (mean +/- std over the
    seeds that did not diverge), from a :class:`bn_utils.sweeps.Sweep`. Each value at which
    some seed diverged gets a cross at the top, labelled with how many. Dotted lines mark, per
    norm, the largest value at which every seed trains (``mark="largest"``) or both ends of
    the range in which every seed trains (``mark="range"``). Returns the axes."""
    if mark not in ("largest", "range"):
        raise ValueError(f"mark must be 'largest' or 'range', got {mark!r}")
    if ax is None:
        _, ax = plt.subplots()
    values = np.asarray(sweep.values)
    ax.set_xscale("log")
    if metric.endswith("loss"):
        ax.set_yscale("log")
    for i, norm in enumerate(sweep.norms):
        final = sweep.final(norm, metric)
        alive = ~np.all(np.isnan(final), axis=1)
        with np.errstate(invalid="ignore"):
            mean, std = np.nanmean(final[alive], axis=1), np.nanstd(final[alive], axis=1)
        label = NORM_LABELS.get(norm, norm)
        ax.errorbar(
            values[alive],
            mean,
            yerr=std,
            color=color_for(norm, i),
            marker="o",
            capsize=3,
            label=f"{label} (n={len(sweep.seeds)})",
        )
    _reserve_top(ax, 0.8)  # the data keep the lower 80%; the crosses get the strip above
    crosses = mpl.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    for i, norm in enumerate(sweep.norms):
        color, label = color_for(norm, i), NORM_LABELS.get(norm, norm)
        for value, count in zip(values, sweep.diverged(norm).sum(axis=1), strict=True):
            if count:
                y = 0.94 - 0.08 * i
                ax.plot(value, y, marker="x", markersize=9, mew=2.5, color=color, transform=crosses)
                ax.annotate(
                    f"{count}/{len(sweep.seeds)}",
                    (value, y),
                    xycoords=crosses,
                    xytext=(7, -4),
                    textcoords="offset points",
                    fontsize=8,
                    color=color,
                )
        stable = sweep.stable_values(norm)
        if not stable:
            continue
        if mark == "largest":
            ax.axvline(
                max(stable),
                color=color,
                linestyle=":",
                linewidth=1.5,
                label=f"largest stable {sweep.label}, {label}: {max(stable):g}",
            )
        else:
            low, high = min(stable), max(stable)
            for edge in {low, high}:
                ax.axvline(edge, color=color, linestyle=":", linewidth=1.5)
            span = f"{low:g} to {high:g}" if low != high else f"{low:g} only"
            ax.plot([], [], color=color, linestyle=":", linewidth=1.5, label=f"every seed trains, {label}: {span}")
    ax.plot([], [], "kx", mew=2.5, linestyle="none", label="diverged (seeds)")
    ax.set_xlabel(sweep.label)
    ax.set_ylabel(SWEEP_LABELS.get(metric, metric))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_layer_profile(
    diagnostics: Mapping[object, object],
    quantity: str = "activation_std",
    *,
    ax=None,
    title: str | None = None,
    key_label: str = "scale",
):
    """One line per entry of ``diagnostics`` (e.g. from
    :func:`bn_utils.initialization.diagnose_init_scales`): ``quantity`` of each hidden block.
    Numeric keys (scales, depths) are labelled ``"{key_label} {key}"`` and coloured dark to
    light as they grow; norm names (``"none"``, ``"batch"``) get the norm's name and colour.
    Log scale; for the update ratio, a dashed, labelled line marks the 1e-3 rule of thumb.
    Returns the axes."""
    if quantity not in PROFILE_LABELS:
        raise ValueError(f"unknown quantity {quantity!r}; valid names are: {', '.join(PROFILE_LABELS)}")
    if ax is None:
        _, ax = plt.subplots()
    cmap = mpl.colormaps["viridis"]
    keys = list(diagnostics)
    for i, key in enumerate(keys):
        values = getattr(diagnostics[key], quantity)
        if isinstance(key, str):
            color, label = color_for(key, i), NORM_LABELS.get(key, key)
        else:
            color, label = cmap(i / max(len(keys) - 1, 1) * 0.9), f"{key_label} {key:g}"
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, color=color, label=label)
    if quantity == "update_ratio":
        ax.axhline(1e-3, color=PALETTE["black"], linestyle="--", linewidth=1)
        ax.annotate(
            "1e-3 rule of thumb",
            (0, 1e-3),
            xycoords=("axes fraction", "data"),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(PROFILE_LABELS[quantity])
    ax.legend(fontsize=8, ncol=2)
    if title:
        ax.set_title(title)
    return ax


def plot_gradient_growth(
    diagnostics: Mapping[str, Mapping[int, object]], *, ax=None, growth: float | None = None, title: str | None = None
):
    """The ratio of the first to the last hidden layer's weight-gradient norm at initialisation
    against depth, one line per norm (``diagnostics[norm][depth]``, e.g. from
    :func:`bn_utils.initialization.diagnose_depths`; a list of those, one per seed, gives the
    mean and the range over seeds). ``growth``, if given, draws the prediction ``growth ** (depth - 1)``.
    Log scale; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    for i, (norm, by_depth) in enumerate(diagnostics.items()):
        runs = by_depth if isinstance(by_depth, (list, tuple)) else [by_depth]
        depths = np.array(sorted(runs[0]))
        ratios = np.array([[run[d].gradient_norm[0] / run[d].gradient_norm[-1] for d in depths] for run in runs])
        color = color_for(norm, i)
        ax.plot(
            depths,
            np.exp(np.log(ratios).mean(0)),
            marker="o",
            color=color,
            label=f"{NORM_LABELS.get(norm, norm)} (n={len(runs)})",
        )
        if len(runs) > 1:
            ax.fill_between(depths, ratios.min(0), ratios.max(0), color=color, alpha=0.2, linewidth=0)
    if growth is not None:
        grid = np.linspace(depths.min(), depths.max(), 100)
        ax.plot(
            grid,
            growth ** (grid - 1),
            color=PALETTE["black"],
            linestyle="--",
            linewidth=1,
            label=f"{growth:.2f}^(depth - 1)",
        )
    ax.set_yscale("log")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("gradient norm, first / last layer")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_batch_noise(noise: Mapping[int, float], *, ax=None, title: str | None = None):
    """BN's batch noise against the batch size (from :func:`bn_utils.regularization.batch_noise`),
    log-log, with the Gaussian prediction sqrt(1.5 / batch size) dashed. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    sizes = np.array(sorted(noise))
    ax.plot(sizes, [noise[s] for s in sizes], marker="o", color=color_for("batch"), label="measured (digits)")
    ax.plot(
        sizes, np.sqrt(1.5 / sizes), color=PALETTE["black"], linestyle="--", linewidth=1, label="sqrt(1.5 / batch size)"
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("std of an example's BN output")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_generalization(result, *, ax=None, title: str | None = None):
    """Per configuration of a :class:`bn_utils.regularization.RegularizationResult`, the final
    generalization gap (train minus test accuracy, in points; bar: mean, error bar: standard
    deviation over seeds, in the colour of the configuration's norm), with the mean test accuracy
    written on each bar. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    labels = list(result.histories)
    gaps = [result.spread(label, "gap") for label in labels]
    bars = ax.bar(
        range(len(labels)),
        [100 * g.mean for g in gaps],
        yerr=[100 * g.std for g in gaps],
        capsize=4,
        color=[color_for(result.norms.get(label, label), i) for i, label in enumerate(labels)],
    )
    for bar, label in zip(bars, labels, strict=True):
        ax.annotate(
            f"test {100 * result.spread(label, 'test_acc').mean:.1f}%",
            (bar.get_x() + bar.get_width() / 2, 0),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color="white",
            rotation=90,
            va="bottom",
        )
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("train − test accuracy (points)")
    if title:
        ax.set_title(title)
    return ax


def plot_estimates(
    estimates: Mapping[str, object],
    *,
    ax=None,
    colors: Mapping[str, str] | None = None,
    scale: float = 100,
    ylabel: str = "",
    zero_line: bool = False,
    title: str | None = None,
):
    """Per entry of ``estimates`` (label -> :class:`bn_utils.regularization.Estimate`), one dot per
    seed, the mean (a bar across) and its confidence interval (error bar), times ``scale``;
    ``colors`` maps labels to colours, ``zero_line`` draws y = 0. Returns the axes."""
    if not estimates:
        raise ValueError("plot_estimates needs at least one estimate")
    if ax is None:
        _, ax = plt.subplots()
    offsets = np.linspace(-0.15, 0.15, max(len(e.values) for e in estimates.values()))
    for i, (label, estimate) in enumerate(estimates.items()):
        color = (colors or {}).get(label, CYCLE[i % len(CYCLE)])
        values = scale * np.asarray(estimate.values)
        ax.scatter(i + offsets[: len(values)], values, s=14, color=color, alpha=0.6, linewidths=0)
        low, high = estimate.interval
        mean = scale * estimate.mean
        ax.errorbar(
            i, mean, yerr=[[mean - scale * low], [scale * high - mean]], fmt="_", markersize=22, capsize=6, color=color
        )
    if zero_line:
        ax.axhline(0, color="0.5", linewidth=1, linestyle="--")
    ax.set_xticks(range(len(estimates)), list(estimates), rotation=20, ha="right")
    ax.set_xlim(-0.6, len(estimates) - 0.4)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def _reserve_top(ax, fraction: float) -> None:
    """Raise the top of the y axis so the current data span only the lower ``fraction``."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(low, 10 ** (np.log10(low) + (np.log10(high) - np.log10(low)) / fraction))
    else:
        ax.set_ylim(low, low + (high - low) / fraction)


def plot_landscape(runs: Mapping[str, object], measure: str = "loss_range", *, ax=None, title: str | None = None):
    """A landscape measure over training, one band per entry of ``runs`` (label ->
    :class:`bn_utils.landscape.LandscapeRun`). ``loss_range`` and ``beta_smoothness``: mean
    and range over seeds; ``gradient_change``: the range over step sizes (as in Santurkar et al.'s
    Figure 4b), averaged over seeds. Log scale; returns the axes."""
    if measure not in LANDSCAPE_LABELS:
        raise ValueError(f"unknown measure {measure!r}; valid names are: {', '.join(sorted(LANDSCAPE_LABELS))}")
    if ax is None:
        _, ax = plt.subplots()
    for i, (label, run) in enumerate(runs.items()):
        color = color_for(run.norm, i)
        steps = np.asarray(run.probe_steps)
        if measure == "gradient_change":
            low, high = run.gradient_change_band()
            ax.fill_between(steps, low, high, color=color, alpha=0.3, linewidth=0)
            ax.plot(steps, high, color=color, label=f"{label} (n={len(run.probes)})")
        else:
            plot_band(ax, steps, run.measure(measure), label=label, color=color, band="minmax")
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())  # label the decades only
    ax.set_xlabel("training step")
    ax.set_ylabel(LANDSCAPE_LABELS[measure])
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


_DYNAMICS_EXTRA = {"gradient_ratio": "gradient norm, first / last hidden layer"}


def _run_colors(runs: Mapping[str, object]) -> list[str]:
    """A norm's colour for a run whose norm no other run has; house colours otherwise."""
    norms = [run.norm for run in runs.values()]
    return [color_for(norm if norms.count(norm) == 1 else "", i) for i, norm in enumerate(norms)]


def _dynamics_label(quantity: str) -> str:
    from .layer_dynamics import DYNAMICS_QUANTITIES

    labels = {**DYNAMICS_QUANTITIES, **_DYNAMICS_EXTRA}
    if quantity not in labels:
        raise ValueError(f"unknown quantity {quantity!r}; valid names are: {', '.join(labels)}")
    return labels[quantity]


def plot_layer_dynamics(
    runs: Mapping[str, object],
    quantity: str = "gradient_ratio",
    *,
    layers: Sequence[int] = (0, -1),
    ax=None,
    title: str | None = None,
):
    """A quantity over the recorded training steps, one line per entry of ``runs`` (label ->
    :class:`bn_utils.layer_dynamics.LayerDynamics`) and, for a per-layer quantity, per hidden layer
    in ``layers`` (0-based, negative from the end; first solid, the others dashed and dotted):
    median over seeds, shaded range. ``gradient_ratio`` is the first over the last hidden layer's
    gradient norm. Steps on a symmetric-log axis, so that step 0 shows; log vertical axis except
    for the weight growth and the representation measures. Returns the axes."""
    ylabel = _dynamics_label(quantity)
    if ax is None:
        _, ax = plt.subplots()
    styles = ["-", "--", ":", "-."]
    for color, (label, run) in zip(_run_colors(runs), runs.items(), strict=True):
        steps = np.asarray(run.steps)
        if quantity == "gradient_ratio":
            series = [(label, run.gradient_ratio)]
        else:
            values = run.quantity(quantity)
            series = []
            for layer in layers:
                if not -run.depth <= layer < run.depth:
                    raise ValueError(f"layer {layer} out of range for {run.depth} hidden layers")
                series.append((f"{label}, layer {layer % run.depth + 1}", values[..., layer]))
        for j, (name, v) in enumerate(series):
            ax.plot(
                steps,
                np.median(v, axis=0),
                color=color,
                linestyle=styles[j % len(styles)],
                marker="o",
                markersize=3,
                label=f"{name} (n={len(v)})",
            )
            ax.fill_between(steps, v.min(0), v.max(0), color=color, alpha=0.15, linewidth=0)
    ax.set_xscale("symlog", linthresh=1)
    last = max(max(run.steps) for run in runs.values())
    ticks = [0] + [m * 10**e for e in range(6) for m in (1, 2, 5) if m * 10**e <= last]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    if quantity not in ("similarity", "class_contrast", "weight_growth"):
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_dynamics_profile(
    runs: Mapping[str, object], quantity: str = "class_contrast", *, step: int = 0, ax=None, title: str | None = None
):
    """A per-layer quantity against the hidden layer at one recorded ``step``, one line per
    entry of ``runs`` (label -> :class:`bn_utils.layer_dynamics.LayerDynamics`): median over
    seeds, shaded range. Log vertical axis except for the representation measures. Returns the axes."""
    ylabel = _dynamics_label(quantity)
    if quantity == "gradient_ratio":
        raise ValueError("gradient_ratio is one number per step; plot it with plot_layer_dynamics")
    if ax is None:
        _, ax = plt.subplots()
    for color, (label, run) in zip(_run_colors(runs), runs.items(), strict=True):
        values = run.quantity(quantity)[:, run.at(step)]
        layers = np.arange(1, run.depth + 1)
        ax.plot(layers, np.median(values, 0), color=color, marker="o", markersize=3, label=f"{label} (n={len(values)})")
        ax.fill_between(layers, values.min(0), values.max(0), color=color, alpha=0.15, linewidth=0)
    if quantity not in ("similarity", "class_contrast"):
        ax.set_yscale("log")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax
