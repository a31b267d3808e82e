"""Interactive explorers (ipywidgets): each answers one "what if..." in well under a second."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .inference import running_stats_trace
from .plotting import plot_running_stats

__all__ = ["running_stats_explorer"]


def _draw_running_stats(batch_size: int, momentum: float, cumulative: bool, steps: int = 200):
    trace = running_stats_trace(batch_size=batch_size, momentum=None if cumulative else momentum,
                                steps=steps, seed=0)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    plot_running_stats(trace, ax=ax)
    mean_err, var_err = trace.final_relative_error()
    rule = "cumulative average" if cumulative else f"momentum {momentum:.3f}"
    ax.set_title(f"batch size {batch_size}, {rule}: final error {mean_err:.2f} std (mean), "
                 f"{100 * var_err:.0f}% (variance)", fontsize=10)
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
