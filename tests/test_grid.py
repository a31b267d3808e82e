"""bn_utils.grid: a labelled axis finds a label's position or names what exists; the grid results of
the chapters all answer a wrong label through it."""

from dataclasses import dataclass

import numpy as np
import pytest

import bn_utils as bu
from bn_utils.experiments import batch_size as bs
from bn_utils.experiments import residual
from bn_utils.experiments import transfer as tr
from bn_utils.experiments.placement import PlacementStudy
from bn_utils.grid import Axis, LabelledGrid
from bn_utils.history import Sweep

pytestmark = pytest.mark.unit


def test_an_axis_finds_a_label_or_names_the_axis_the_label_and_what_exists():
    lrs = Axis("learning rate", (0.01, 0.1, 1.0), "was not trained", "the study")
    assert lrs.index(0.1) == 1 and lrs.check(1.0) == 1.0 and 0.01 in lrs and 0.3 not in lrs
    assert len(lrs) == 3 and list(lrs) == [0.01, 0.1, 1.0]
    with pytest.raises(ValueError, match=r"^learning rate 0.3 was not trained; the study has: 0.01, 0.1, 1$"):
        lrs.index(0.3)
    norms = Axis("norm", ("none", "batch"))
    with pytest.raises(ValueError, match=r"^norm 'layer' is not on the grid; the grid has: none, batch$"):
        norms.index("layer")
    with pytest.raises(ValueError, match="the grid has: none$"):
        Axis("norm", ()).index("batch")


def test_an_axis_matches_numbers_exactly_unless_told_to_match_close_ones():
    third = 0.1 + 0.2  # 0.30000000000000004
    with pytest.raises(ValueError, match="is not on the grid"):
        Axis("learning rate", (0.3,)).index(third)
    assert Axis("learning rate", (0.1, 0.3), close=True).index(third) == 1
    assert Axis("learning rate", (0.3,), close=True).index(np.float64(third)) == 0
    assert "batch" not in Axis("learning rate", (0.3,), close=True)  # not a number: not on it


def test_a_labelled_grid_locates_labels_by_axis_name():
    @dataclass(frozen=True)
    class Table(LabelledGrid):
        norms: tuple[str, ...]
        sizes: tuple[int, ...]

        def axes(self):
            return {"norm": Axis("norm", self.norms), "size": Axis("batch size", self.sizes)}

    table = Table(("none", "batch"), (2, 32))
    assert table.locate(norm="batch", size=2) == (1, 0) and table.locate(size=32) == (1,)
    with pytest.raises(ValueError, match="batch size 8 is not on the grid; the grid has: 2, 32"):
        table.locate(norm="none", size=8)
    with pytest.raises(ValueError, match="Table has no axis 'seed'; its axes are: norm, size"):
        table.locate(seed=0)
    with pytest.raises(NotImplementedError, match="LabelledGrid does not say what its axes are"):
        LabelledGrid().axes()


def _history() -> bu.History:
    return bu.History(loss=[1.0] * 10, eval_steps=[0, 10], test_acc=[0.1, 0.9], test_loss=[2.0, 1.0])


def test_every_grid_result_of_the_course_names_its_axes():
    """The five grid results (and the residual depth sweep) answer ``axes()`` with their labels."""
    sweep = Sweep("lr", (0.1, 1.0), (0, 1), {"none": [[_history()] * 2] * 2})
    assert {name: list(axis) for name, axis in sweep.axes().items()} == {"norm": ["none"], "lr": [0.1, 1.0]}
    study = PlacementStudy((0.1,), (0,), {"before": [[_history()]], "after": [[_history()]]}, 0.9)
    assert isinstance(study, Sweep) and study.lrs == (0.1,) and list(study.axis("position")) == ["before", "after"]
    values = np.zeros((1, 2, 1))
    result = bs.SweepResult(
        ("batch",), (2, 32), (0,), "shuffled", values, values, values, values, values, values, (0.1, 0.2), 1, 10
    )
    assert result.locate(norm="batch", batch_size=32) == (0, 1)
    grid = residual.Grid(
        ("plain",), (2,), (0.1,), (0,), 10, (10,), {"plain": np.zeros((1, 1, 1, 1))}, {}, {}, {}, min_accuracy=0.5
    )
    assert grid.locate(name="plain", depth=2, lr=0.1 + 1e-12, step=10) == (0, 0, 0, 0)
    config = tr.MLPConfig("batch")
    mlps = tr.MLPGrid(tr.BENCHMARKS["mnist1d"], (config,), (0,), (10,), {config: [_history()]}, {10: {}})
    assert list(mlps.axis("config")) == [config] and list(mlps.axis("steps")) == [10]
