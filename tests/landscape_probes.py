"""A hand-made landscape probe, shared by the tests of the landscape measures (tests/test_landscape.py)
and of chapter 3's ratios (tests/test_chapters_faster_convergence.py)."""

import numpy as np

from bn_utils.experiments.landscape import StepProbe


def probe(loss_range: float, gradient_norm: float, gradient_change: float) -> StepProbe:
    """A probe at step sizes 0.05 and 0.1 whose largest gradient change is at 0.1."""
    return StepProbe(
        step_sizes=np.array([0.05, 0.1]),
        loss=1.0,
        gradient_norm=gradient_norm,
        losses=np.array([1.0, 1.0 + loss_range]),
        gradient_changes=np.array([gradient_change / 2, gradient_change]),
    )
