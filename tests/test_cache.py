"""bn_utils.cache: a result is read back only under the key of everything that decides it."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

import bn_utils as bu
from bn_utils import cache
from bn_utils.experiments import residual

pytestmark = pytest.mark.unit


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENVIRONMENT, str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def digits():
    return bu.load_digits()


def test_the_source_of_a_computation_is_its_module_and_everything_it_imports():
    modules = cache.source_modules("experiments.residual")
    assert {"experiments.residual", "stacked", "models", "layers", "norms", "data", "training"} <= modules
    assert not any(name.startswith("experiments.") and name != "experiments.residual" for name in modules)
    assert "" not in modules, "'from .. import _validate' imports _validate, not the whole package"
    with pytest.raises(ValueError, match="no module 'nonsense'"):
        cache.source_modules("nonsense")


def test_the_key_names_the_arithmetic(digits):
    key = cache.cache_key("demo", "experiments.residual", digits, {"seeds": (0, 1)})
    assert key.threads == torch.get_num_threads() and key.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert key.torch == torch.__version__ and key.processor and key.device == "cpu"
    assert key.arguments == '{"seeds": [0, 1]}'
    other_seeds = cache.cache_key("demo", "experiments.residual", digits, {"seeds": (5, 6)})
    other_data = cache.cache_key("demo", "experiments.residual", bu.load_digits(images=True), {"seeds": (0, 1)})
    other_source = cache.cache_key("demo", "experiments.batch_size", digits, {"seeds": (0, 1)})
    assert len({k.digest for k in (key, other_seeds, other_data, other_source)}) == 4
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert cache.cache_key("demo", "experiments.residual", digits, {"seeds": (0, 1)}).digest != key.digest
    finally:
        torch.set_num_threads(threads)


def test_a_result_is_computed_once_and_read_back_under_the_same_key(cache_dir, digits):
    calls = []

    def compute():
        calls.append(1)
        return {"accuracy": [0.5, 0.75]}

    key = cache.cache_key("demo", "experiments.residual", digits, {"seeds": (0,)})
    assert cache.cached(key, compute) == {"accuracy": [0.5, 0.75]}
    assert cache.cached(key, compute) == {"accuracy": [0.5, 0.75]} and len(calls) == 1
    other = dataclasses.replace(key, threads=key.threads + 7)
    cache.cached(other, compute)
    assert len(calls) == 2, "another thread count is another computation"


def test_an_entry_whose_recorded_key_differs_is_never_returned(cache_dir, digits):
    key = cache.cache_key("demo", "experiments.residual", digits, {"seeds": (0,)})
    forged = dataclasses.asdict(key) | {"source": "an older source"}
    (cache_dir / f"{key.digest}.pkl").write_bytes(pickle.dumps({"key": forged, "result": "stale"}))
    assert cache.cached(key, lambda: "fresh") == "fresh"
    assert cache.cached(key, lambda: "never called") == "fresh", "the fresh result replaced the forged entry"


def test_switched_off_nothing_is_read_back_or_kept(cache_dir, monkeypatch, digits):
    key = cache.cache_key("demo", "experiments.residual", digits, {"seeds": (0,)})
    assert cache.cached(key, lambda: "kept") == "kept"
    monkeypatch.setenv(cache.SWITCH, "off")
    assert not cache.enabled()
    assert cache.cached(key, lambda: "afresh") == "afresh", "a kept entry was read back with the cache off"
    other = dataclasses.replace(key, arguments='{"seeds": [1]}')
    cache.cached(other, lambda: "not kept")
    assert not (cache_dir / f"{other.digest}.pkl").exists(), "an entry was written with the cache off"
    monkeypatch.setenv(cache.SWITCH, "On ")
    assert cache.enabled() and cache.cached(key, lambda: "never called") == "kept"
    monkeypatch.setenv(cache.SWITCH, "no")
    with pytest.raises(ValueError, match="BN_CACHE must be 'on' or 'off', got 'no'"):
        cache.cached(key, lambda: "x")


def test_without_a_cache_folder_nothing_is_written(tmp_path, monkeypatch, digits):
    monkeypatch.delenv(cache.ENVIRONMENT, raising=False)
    key = cache.cache_key("demo never stored", "experiments.residual", digits, {"seeds": (0,)})
    calls = []
    for _ in range(2):
        cache.cached(key, lambda: calls.append(1))
    assert len(calls) == 2
    cache.cached(key, lambda: "kept", store_in=tmp_path / "stored")
    assert list((tmp_path / "stored").glob("*.pkl")) == [tmp_path / "stored" / f"{key.digest}.pkl"]


def test_the_chapter_grids_are_trained_once_per_key(cache_dir, digits, monkeypatch):
    trained = []
    monkeypatch.setattr(residual, "_train_chapter_grids", lambda data, seeds: trained.append(seeds) or len(trained))
    assert residual.chapter_grids(digits, seeds=(0, 1)) == 1
    assert residual.chapter_grids(digits, seeds=(0, 1)) == 1
    assert residual.chapter_grids(digits, seeds=(2, 3)) == 2
    assert trained == [(0, 1), (2, 3)]


def test_training_under_an_equal_key_gives_the_same_bits(digits):
    """What the cache relies on: the same computation in the same process setting repeats exactly."""
    runs = [
        residual.grid(digits, architectures=("residual_bn", "plain_bn"), depths=(3,), lrs=(0.3,), seeds=(0, 1), steps=6)
        for _ in range(2)
    ]
    for name in ("residual_bn", "plain_bn"):
        assert (runs[0].test_acc[name] == runs[1].test_acc[name]).all()
        assert (runs[0].correct[name] == runs[1].correct[name]).all()


def test_the_status_script_says_which_stored_entries_this_process_finds(tmp_path, monkeypatch, digits):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "cache_results.py"
    spec = importlib.util.spec_from_file_location("cache_results", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(cache, "STORED", tmp_path)
    here = cache.cache_key(
        "bn_utils.experiments.residual.chapter_grids", "experiments.residual", digits, {"seeds": (0,)}
    )
    cache.cached(here, lambda: "grids", store_in=tmp_path)
    elsewhere = dataclasses.replace(here, threads=here.threads + 1, cpu_capability="DEFAULT")
    cache.cached(elsewhere, lambda: "grids", store_in=tmp_path)
    lines = sorted(script.status())
    assert len(lines) == 2
    assert any(line.endswith(": found") and "chapter_grids" in line for line in lines)
    assert any("not found here (cpu_capability, threads differ)" in line for line in lines)


def test_a_remembered_function_is_computed_once_per_call_key(cache_dir, digits):
    calls = []

    @cache.remembered("experiments.transfer")
    def slow(data, *, seeds=(0, 1), lr=0.1, extra=None):
        calls.append((seeds, lr))
        return {"n": len(data.x_train), "seeds": seeds, "lr": lr}

    assert slow(digits) == {"n": len(digits.x_train), "seeds": (0, 1), "lr": 0.1}
    assert slow(digits, seeds=(0, 1)) == slow(digits) and len(calls) == 1, "defaults are part of the key"
    slow(digits, lr=0.3)
    slow(bu.load_digits(images=True))
    assert len(calls) == 3, "another learning rate, another data set: computed again"
    slow(digits, extra=object())
    slow(digits, extra=object())
    assert len(calls) == 5, "an argument without a canonical form is never cached"


def test_bn_utils_functions_as_arguments_are_named_with_their_source():
    from bn_utils.experiments import covariate_shift

    form = cache._canonical({"network": covariate_shift.ioffe_mlp, "lrs": (0.1, 1.0), "n": np.int64(3)})
    assert form["network"]["callable"] == "bn_utils.experiments.covariate_shift.ioffe_mlp"
    assert form["network"]["source"] == cache.source_digest("experiments.covariate_shift")
    assert form["lrs"] == ["0.1", "1.0"] and form["n"] == 3


def test_a_partial_of_a_bn_utils_builder_is_canonical_but_a_closure_is_not():
    import functools

    wide = cache._canonical(functools.partial(bu.make_mlp, 64, 10, width=100, norm="batch"))
    narrow = cache._canonical(functools.partial(bu.make_mlp, 64, 10, width=50, norm="batch"))
    assert wide["partial"]["callable"] == "bn_utils.models.make_mlp" and wide != narrow
    assert wide["args"] == [64, 10] and wide["keywords"] == {"norm": "batch", "width": 100}

    results = []

    def measure(model, history):  # called for what it does: reading it back would skip it
        results.append(history)

    with pytest.raises(cache._NotCanonical):
        cache._canonical(measure)
    with pytest.raises(cache._NotCanonical):
        cache._canonical(functools.partial(bu.make_mlp, 64, 10, activation=lambda x: x))


def test_a_callback_runs_on_every_call_of_a_remembered_function(cache_dir, digits):
    seen = []
    for _ in range(2):
        bu.run_seeds(
            lambda: bu.make_mlp(64, 10, depth=1, width=8),
            digits,
            (0,),
            lr=0.1,
            steps=2,
            on_trained=lambda model, history: seen.append(history),
        )
    assert len(seen) == 2 and not list(cache_dir.iterdir()), "a call with a callback is computed, never stored"


def test_computing_afresh_leaves_the_random_generators_as_reading_back_does(cache_dir, digits):
    import functools
    import random

    def state():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    build = functools.partial(bu.make_mlp, 64, 10, depth=1, width=8)
    draws = []
    for _ in range(2):  # the first call trains (and seeds every generator per seed), the second reads back
        bu.seed_everything(123)
        bu.run_seeds(build, digits, (0, 1), lr=0.1, steps=2)
        draws.append(state())
    bu.seed_everything(123)
    assert draws[0] == draws[1] == state(), "a remembered computation must leave no trace in the generators"
    assert len(list(cache_dir.iterdir())) == 1


def test_the_data_digest_covers_the_validation_split_and_the_class_count(digits):
    split = digits.with_validation(fraction=0.2, seed=0)
    other = digits.with_validation(fraction=0.2, seed=1)
    digests = {cache._data_digest(d) for d in (digits, split, other)}
    assert len(digests) == 3
    relabelled = dataclasses.replace(digits, num_classes=11)
    assert cache._data_digest(relabelled) != cache._data_digest(digits)
