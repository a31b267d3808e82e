"""Headline claims of the chapter "Regularization noise", over 5 seeds, with margins.

Setting: batch noise measured on a first BN layer's inputs (the digits through a random 100-unit
linear layer); regularization: 3 x 100 ReLU MLP, SGD at learning rate 0.1, batches of 128,
40 epochs, with BN (whole batch or ghost batches of 8), layer norm or no norm.
"""

import numpy as np
import pytest

from bn_utils.regularization import batch_noise, regularization_study

SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def table(digits):
    return regularization_study(digits, seeds=SEEDS).table()


def test_batch_noise_falls_like_one_over_root_batch_size(digits):
    noise = batch_noise(digits, (8, 32, 128))
    assert noise[8] > noise[32] > noise[128] > 0
    assert 3 <= noise[8] / noise[128] <= 5, f"noise at 8 / at 128: {noise[8] / noise[128]:.2f} (4 for 1/sqrt)"


def test_noisier_statistics_leave_the_smallest_generalization_gap(table):
    gaps = {label: row["gap"] for label, row in table.items()}
    ghost, full = gaps["BN, ghost batches of 8"], gaps["BN, batch of 128"]
    assert ghost == min(gaps.values()), f"median train-test gaps: {gaps}"
    assert ghost <= full - 0.005, f"gap with ghost batches of 8 {ghost:.4f}, with the whole batch {full:.4f}"


def test_the_regularization_is_small_here(table):
    """The measured other side: every normalization ends within 2 points of the plain network's
    test accuracy, so BN's noise is a mild regularizer in this setting, not a large one."""
    plain = table["no norm"]["test_acc"]
    differences = {label: row["test_acc"] - plain for label, row in table.items()}
    assert max(abs(d) for d in differences.values()) <= 0.02, f"test accuracy minus no norm's: {differences}"
    assert np.isfinite(plain) and plain > 0.9
