"""The digits dataset and the mini-batch iterator."""

import numpy as np
import pytest

from common import data


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
