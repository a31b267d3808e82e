"""Offline data sets and seeded batching."""

import pytest
import torch

from bn_utils import batch_indices, iterate_batches, load_digits, load_mnist1d, make_spirals


def test_digits_split_is_real_standardized_and_seeded():
    data = load_digits(seed=0)
    assert data.input_shape == (64,) and data.num_classes == 10
    assert len(data.x_train) + len(data.x_test) == 1797
    assert len(data.x_test) == round(0.25 * 1797)
    assert set(data.y_train.unique().tolist()) == set(range(10))
    # standardized with training statistics: each non-constant pixel has mean 0, std 1 on train
    mean, std = data.x_train.mean(0), data.x_train.std(0, unbiased=False)
    varying = std > 0
    assert mean.abs().max() < 1e-5
    assert torch.allclose(std[varying], torch.ones(int(varying.sum())), atol=1e-4)
    assert varying.sum() >= 60
    again, other = load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(data.x_test, again.x_test) and torch.equal(data.y_train, again.y_train)
    assert not torch.equal(data.y_test, other.y_test)


def test_digits_as_images_and_no_test_leak():
    flat, images = load_digits(), load_digits(images=True)
    assert images.input_shape == (1, 8, 8)
    assert torch.equal(images.x_train.reshape(len(images.x_train), -1), flat.x_train)
    train_rows = {tuple(r.tolist()) for r in flat.x_train}
    overlap = sum(tuple(r.tolist()) in train_rows for r in flat.x_test)
    assert overlap < 5, "train and test must be disjoint examples (a few digits are exact duplicates)"


def test_spirals_are_balanced_seeded_and_validated():
    data = make_spirals(num_classes=4, points_per_class=100, seed=3)
    assert data.input_shape == (2,) and data.num_classes == 4
    assert len(data.x_train) + len(data.x_test) == 400
    assert torch.equal(data.x_train, make_spirals(num_classes=4, points_per_class=100, seed=3).x_train)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        make_spirals(num_classes=1)
    with pytest.raises(ValueError, match="test_fraction"):
        make_spirals(test_fraction=1.5)


def test_batch_indices_partition_is_seeded_and_drops_short_batch():
    batches = batch_indices(10, 3, seed=0, epoch=0)
    assert [len(b) for b in batches] == [3, 3, 3]
    flat = torch.cat(batches)
    assert len(set(flat.tolist())) == 9
    assert all(torch.equal(a, b) for a, b in zip(batches, batch_indices(10, 3, seed=0, epoch=0), strict=True))
    assert not torch.equal(torch.cat(batch_indices(10, 3, seed=0, epoch=1)), flat)
    assert not torch.equal(torch.cat(batch_indices(10, 3, seed=1, epoch=0)), flat)
    assert [len(b) for b in batch_indices(10, 3, seed=0, drop_last=False)] == [3, 3, 3, 1]
    # Pinned literal values: the same seed must give the same batches on any machine and release.
    assert [b.tolist() for b in batch_indices(10, 4, seed=0)] == [[4, 1, 7, 5], [3, 9, 0, 8]]
    assert [b.tolist() for b in batch_indices(10, 4, seed=3, epoch=2)] == [[4, 6, 9, 0], [8, 5, 1, 2]]


def test_batch_indices_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="between 1 and the number of examples"):
        batch_indices(5, 6, seed=0)
    with pytest.raises(ValueError, match="between 1"):
        batch_indices(5, 0, seed=0)


def test_iterate_batches_pairs_inputs_with_their_labels():
    x = torch.arange(20.0).reshape(10, 2)
    y = torch.arange(10)
    for xb, yb in iterate_batches(x, y, 4, seed=2):
        assert torch.equal(xb[:, 0], 2.0 * yb)
    with pytest.raises(ValueError, match="same length"):
        next(iterate_batches(x, y[:5], 2, seed=0))


def test_dataset_to_device_and_repr():
    data = make_spirals(points_per_class=10)
    moved = data.to("cpu")
    assert torch.equal(moved.x_train, data.x_train)
    assert "spirals" in repr(data) and "3 classes" in repr(data)


def test_validation_split_is_held_out_of_training_seeded_and_disjoint():
    data = load_digits()
    split = data.with_validation(fraction=0.2, seed=0)
    assert split.has_validation and not data.has_validation
    assert len(split.x_val) == round(0.2 * len(data.x_train))
    assert len(split.x_train) + len(split.x_val) == len(data.x_train)
    assert torch.equal(split.x_test, data.x_test) and torch.equal(split.y_test, data.y_test)

    # train and validation partition the original training examples (as a multiset of rows:
    # the digits hold a few duplicate images), so no validation example is a training or test one
    def rows(*tensors):
        return sorted(tuple(r.tolist()) for x in tensors for r in x)

    assert rows(split.x_train, split.x_val) == rows(data.x_train)
    labels = torch.cat([split.y_train, split.y_val]).sort().values
    assert torch.equal(labels, data.y_train.sort().values)
    again, other = data.with_validation(0.2, seed=0), data.with_validation(0.2, seed=1)
    assert torch.equal(split.y_val, again.y_val) and not torch.equal(split.y_val, other.y_val)
    view = split.validation_view()
    assert (
        torch.equal(view.x_test, split.x_val) and torch.equal(view.x_train, split.x_train) and not view.has_validation
    )
    assert "270 validation" in repr(split)
    images = load_digits(images=True).with_validation(0.2, seed=0)
    assert images.x_val.shape[1:] == (1, 8, 8)
    assert split.to("cpu").has_validation
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1.5"):
        data.with_validation(1.5)
    with pytest.raises(ValueError, match="already holds a validation set"):
        split.with_validation()
    with pytest.raises(ValueError, match="no validation set"):
        data.validation_view()


def test_mnist1d_is_the_published_data_set_split_and_standardized():
    data = load_mnist1d()
    assert data.name == "MNIST-1D" and data.input_shape == (40,) and data.num_classes == 10
    assert (len(data.x_train), len(data.x_test)) == (4000, 1000)
    import numpy as np

    # the first training sequence and the class counts of the published mnist1d_data.pkl
    # (github.com/greydanus/mnist1d), which make_dataset(get_dataset_args()) reproduces exactly
    from bn_utils.data import _mnist1d_arrays

    x_train, y_train, _, y_test = _mnist1d_arrays()
    published = [-0.33200567, -0.47191037, -0.77869708, -1.00974083, -0.88235257]
    assert x_train[0, :5] == pytest.approx(published, abs=1e-7)
    assert np.bincount(y_train).tolist() == [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
    assert np.bincount(y_test).tolist() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
    # one mean and one scale for all positions, from the training sequences
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std(unbiased=False)) - 1) < 1e-4
    assert not torch.allclose(data.x_train.std(0), torch.ones(40), atol=0.05), "positions keep their own spread"
    sequences = load_mnist1d(sequences=True)
    assert sequences.input_shape == (1, 40)
    assert torch.equal(sequences.x_train.reshape(4000, 40), data.x_train)
    split = data.with_validation(fraction=0.2, seed=0)
    assert (len(split.x_train), len(split.x_val), len(split.x_test)) == (3200, 800, 1000)


def test_mnist1d_loads_without_any_network_and_leaves_the_random_generators_alone(monkeypatch):
    import random
    import socket

    import numpy as np

    from bn_utils import data as data_module

    def no_network(*args, **kwargs):
        raise AssertionError("loading MNIST-1D tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "get_dataset", no_network)  # the package's downloading loader
    data_module._mnist1d_arrays.cache_clear()  # generate it again, here, with the network blocked
    np.random.seed(7)
    random.seed(7)
    expected = (np.random.rand(), random.random())
    np.random.seed(7)
    random.seed(7)
    data = load_mnist1d()
    assert (np.random.rand(), random.random()) == expected, "make_dataset reseeds NumPy and random; restore them"
    assert data.x_train.shape == (4000, 40)
    x_train, *_ = data_module._mnist1d_arrays()
    with pytest.raises(ValueError, match="read-only"):
        x_train[0, 0] = 1.0  # the cached arrays cannot be changed by a caller


def test_mnist1d_arguments_are_checked():
    with pytest.raises(TypeError, match="sequences must be True or False"):
        load_mnist1d(sequences="yes")
    with pytest.raises(TypeError, match="floating-point torch.dtype"):
        load_mnist1d(dtype=torch.int64)
    assert load_mnist1d(dtype=torch.float64).x_test.dtype == torch.float64


def test_digits_are_scikit_learns_read_without_importing_it():
    """The bundled file read directly: the same arrays as ``sklearn.datasets.load_digits`` (whose
    import takes about a second of every notebook's start)."""
    import numpy as np
    from sklearn.datasets import load_digits as sklearn_digits

    from bn_utils.data import _digits_arrays

    pixels, target = _digits_arrays()
    bunch = sklearn_digits()
    assert pixels.dtype == np.float64 and np.array_equal(pixels, bunch.data.astype(np.float64))
    assert target.dtype == bunch.target.dtype and np.array_equal(target, bunch.target)
