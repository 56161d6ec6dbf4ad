"""The digits dataset, the mini-batch iterator, and DataLoader batches in both engines
(the loader itself: test_data_loader.py)."""

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import data
from common import functional as F


def test_digits_split_is_fixed_and_scaled():
    ds = data.digits()
    assert ds.x_train.shape == (1438, 64) and ds.x_test.shape == (359, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    np.testing.assert_array_equal(ds.y_test, data.digits().y_test)
    assert data.digits(images=True).x_train.shape == (1438, 1, 8, 8)


def test_batches_cover_every_row_once_in_a_shuffled_order():
    x, y = np.arange(10)[:, None], np.arange(10)
    parts = list(data.batches(x, y, 4, generator=0))
    assert [len(b[1]) for b in parts] == [4, 4, 2]
    seen = np.concatenate([b[1] for b in parts])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))
    assert all((bx[:, 0] == by).all() for bx, by in parts)
    assert [len(b[1]) for b in data.batches(x, y, 4, drop_last=True)] == [4, 4]


def test_mismatched_batches_are_explained():
    with pytest.raises(ValueError, match="x has 3 rows but y has 2"):
        next(data.batches(np.zeros(3), np.zeros(2), 1))


def test_splits_give_datasets_of_their_rows():
    splits = data.digits()
    assert isinstance(splits.train, data.Dataset) and len(splits.train) == 1438
    x, y = splits.test[3]
    np.testing.assert_array_equal(x, splits.x_test[3])
    assert y == splits.y_test[3]
    with pytest.raises(ValueError, match=r"different lengths \[2, 3\]"):
        data.ArrayDataset(np.zeros(3), np.zeros(2))


def test_loader_batches_feed_both_engines():
    splits = data.digits()
    xb, yb = next(iter(data.DataLoader(splits.train, batch_size=16, shuffle=True, seed=0)))
    assert xb.dtype == np.float32 and xb.shape == (16, 64) and yb.dtype == np.int64
    w = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
    eager = F.cross_entropy(E.tensor(xb) @ E.tensor(w), E.tensor(yb))
    x, labels = S.placeholder((16, 64)), S.placeholder((16,), "int64")
    compiled = S.compile(F.cross_entropy(x @ S.constant(w), labels), inputs=[x, labels])
    np.testing.assert_allclose(float(compiled(xb, yb)), float(eager), rtol=1e-6)


def test_augmented_images_are_enlarged_and_differ_on_every_read():
    splits = data.digits(images=True)
    augmented = data.Augmented(splits.x_train, splits.y_train, size=28)
    (first, label), (second, _) = augmented[7], augmented[7]
    assert first.shape == (1, 28, 28) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0 and label == splits.y_train[7]
    assert not np.array_equal(first, second)
    plain = data.Augmented(
        splits.x_train, splits.y_train, 8, degrees=0, scale=0, shift=0, elastic=0, noise=0
    )
    np.testing.assert_allclose(plain[7][0][0], splits.x_train[7, 0], atol=1e-6)
