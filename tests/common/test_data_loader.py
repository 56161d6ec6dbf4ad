"""DataLoader: batches in order, epochs shuffled reproducibly, the same batches at any number
of workers, worker errors and deaths reported in the main process, workers gone after a
`break`. Datasets that workers load are defined here, at module level, so workers import
them."""

import gc
import os
import signal
import time
from collections import namedtuple

import numpy as np
import pytest

from common import data, random

Point = namedtuple("Point", ["x", "label"])


class Squares:
    """Sample i is (array [i, i*i], i): easy to recognise in a batch."""

    def __init__(self, n: int, seconds_per_sample: float = 0.0) -> None:
        self.n, self.seconds_per_sample = n, seconds_per_sample

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple:
        time.sleep(self.seconds_per_sample)
        return np.array([index, index * index]), index


class FailsAt(Squares):
    def __getitem__(self, index: int) -> tuple:
        if index == 5:
            raise ValueError("sample 5 is corrupt")
        return super().__getitem__(index)


class Records(Squares):
    """Dict samples."""

    def __getitem__(self, index: int) -> dict:
        return {"x": np.full((2, 3), index, np.float32), "label": index, "name": f"s{index}"}


class HoldsALambda(Squares):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.transform = lambda x: x


class Unpicklable(Squares):
    def __getitem__(self, index: int) -> object:
        return lambda: index  # a batch of these cannot travel back from a worker


def labels(loader) -> list[list[int]]:
    return [batch[1].tolist() for batch in loader]


def gone(pids: list[int], within_s: float) -> bool:
    """Whether every process in `pids` has exited and been reaped within `within_s`."""
    deadline = time.monotonic() + within_s
    while any(os.path.exists(f"/proc/{pid}") for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_batches_come_in_order_and_cover_the_dataset_once():
    loader = data.DataLoader(Squares(10), batch_size=4)
    assert len(loader) == 3 and labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    xb, yb = next(iter(loader))
    assert isinstance(xb, np.ndarray) and xb.shape == (4, 2) and xb[3].tolist() == [3, 9]
    dropped = data.DataLoader(Squares(10), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and labels(dropped) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(data.DataLoader(Squares(8), batch_size=4, drop_last=True)) == 2


def test_each_epoch_is_a_new_shuffle_that_its_seed_replays():
    loader = data.DataLoader(Squares(20), batch_size=6, shuffle=True, seed=3)
    first, second = labels(loader), labels(loader)
    assert first != second and loader.epoch == 2
    for epoch in (first, second):
        assert sorted(sum(epoch, [])) == list(range(20)) and sum(epoch, []) != list(range(20))
    replay = data.DataLoader(Squares(20), batch_size=6, shuffle=True, seed=3)
    assert labels(replay) == first and labels(replay) == second
    assert replay.batch_indices(1) == second
    other_seed = data.DataLoader(Squares(20), batch_size=6, shuffle=True, seed=4)
    assert labels(other_seed) != first


def test_no_seed_takes_one_from_the_default_generator():
    random.manual_seed(7)
    first = data.DataLoader(Squares(20), batch_size=5, shuffle=True)
    random.manual_seed(7)
    assert data.DataLoader(Squares(20), batch_size=5, shuffle=True).seed == first.seed


def test_the_batches_are_the_same_at_0_1_and_2_workers():
    """Random augmentation included: each batch draws from its own stream, whoever loads it."""
    splits = data.digits(images=True)
    augmented = data.Augmented(splits.x_train[:40], splits.y_train[:40], size=12)

    def two_epochs(workers: int) -> list[np.ndarray]:
        loader = data.DataLoader(augmented, 8, shuffle=True, seed=1, num_workers=workers)
        return [images for _ in range(2) for images, _labels in loader]

    in_process = two_epochs(0)
    assert not np.array_equal(in_process[0], in_process[5])  # epoch 2 re-augments
    for workers in (1, 2):
        batches = two_epochs(workers)
        assert len(batches) == len(in_process) == 10
        for got, expected in zip(batches, in_process):
            np.testing.assert_array_equal(got, expected)


def test_loading_in_process_leaves_the_callers_random_stream_alone():
    splits = data.digits(images=True)
    augmented = data.Augmented(splits.x_train[:8], splits.y_train[:8], size=12)
    random.manual_seed(0)
    expected = random.default_generator().random(3)
    random.manual_seed(0)
    list(data.DataLoader(augmented, batch_size=4, seed=0))
    np.testing.assert_array_equal(random.default_generator().random(3), expected)


def test_samples_are_collated_field_by_field():
    x0, x1 = np.zeros((2, 3)), np.ones((2, 3))
    xs, ys = data.collate([(x0, 0), (x1, 1)])
    assert xs.shape == (2, 2, 3) and ys.tolist() == [0, 1] and ys.dtype == np.int64
    point = data.collate([Point(x0, 0), Point(x1, 1)])
    assert isinstance(point, Point) and point.x.shape == (2, 2, 3)
    assert isinstance(data.collate([[x0, 1.5], [x1, 2.5]]), list)
    batch = next(iter(data.DataLoader(Records(5), batch_size=3, num_workers=1)))
    assert set(batch) == {"x", "label", "name"}
    assert batch["x"].shape == (3, 2, 3) and batch["x"].dtype == np.float32
    assert batch["label"].tolist() == [0, 1, 2] and batch["name"] == ["s0", "s1", "s2"]
    with pytest.raises(ValueError, match=r"different shapes \[\(2,\), \(3,\)\]"):
        data.collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match=r"the samples have \[1, 2\] fields"):
        data.collate([(x0,), (x1, 1)])


def test_a_custom_collate_runs_in_the_workers():
    loader = data.DataLoader(Squares(6), batch_size=3, num_workers=2, collate=len)
    assert list(loader) == [3, 3]


def test_a_worker_error_names_the_sample_and_carries_the_workers_traceback():
    loader = data.DataLoader(FailsAt(12), batch_size=2, num_workers=2)
    with pytest.raises(data.DataLoaderWorkerError) as caught:
        list(loader)
    error = caught.value
    assert error.sample == 5 and error.batch == 2
    message = str(error)
    assert "failed on sample 5 of batch 2" in message
    assert "Traceback" in message and "in __getitem__" in message
    assert "ValueError: sample 5 is corrupt" in message


def test_in_process_the_datasets_own_error_propagates_with_the_index_noted():
    with pytest.raises(ValueError, match="sample 5 is corrupt") as caught:
        list(data.DataLoader(FailsAt(12), batch_size=2))
    assert "raised by dataset[5]" in caught.value.__notes__[0]


def test_a_batch_that_cannot_be_pickled_is_reported():
    with pytest.raises(data.DataLoaderWorkerError, match="batch 0") as caught:
        next(iter(data.DataLoader(Unpicklable(4), batch_size=2, num_workers=1)))
    assert "pickle" in str(caught.value).lower() and caught.value.sample is None


def test_a_dataset_that_cannot_be_pickled_is_explained():
    with pytest.raises(AttributeError, match="Can't pickle local object") as caught:
        iter(data.DataLoader(HoldsALambda(4), batch_size=2, num_workers=2))
    assert "each worker receives the dataset and collate pickled" in caught.value.__notes__[-1]


def test_breaking_out_of_the_loop_stops_the_workers():
    loader = data.DataLoader(Squares(200, 0.005), batch_size=4, num_workers=2)
    batches = iter(loader)
    for _ in batches:
        pids = batches.worker_pids
        break
    assert len(pids) == 2 and not gone(pids, within_s=0.0)
    del batches
    gc.collect()
    assert gone(pids, within_s=3.0)


def test_leaving_the_with_block_or_the_last_batch_stops_the_workers():
    loader = data.DataLoader(Squares(200, 0.005), batch_size=4, num_workers=2)
    with iter(loader) as batches:
        next(batches)
        pids = batches.worker_pids
    assert gone(pids, within_s=3.0)
    batches = iter(data.DataLoader(Squares(6), batch_size=2, num_workers=2))
    assert len(list(batches)) == 3 and gone(batches.worker_pids, within_s=3.0)


def test_a_killed_worker_is_reported_at_once_not_waited_on():
    loader = data.DataLoader(Squares(200, 0.01), batch_size=2, num_workers=2)
    batches = iter(loader)
    next(batches)
    victim = batches.worker_pids[1]
    os.kill(victim, signal.SIGKILL)
    start = time.monotonic()
    died = rf"worker 1 \(pid {victim}\) was killed by signal SIGKILL while loading batch"
    with pytest.raises(data.DataLoaderWorkerError, match=died):
        for _ in batches:
            pass
    assert time.monotonic() - start < 3.0
    assert gone(batches.worker_pids, within_s=3.0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
        ({"num_workers": 1.5}, "num_workers must be an integer >= 0, got 1.5"),
        ({"num_workers": True}, "num_workers must be an integer >= 0, got True"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"prefetch": 0}, "prefetch must be an integer >= 1, got 0"),
        ({"seed": -2}, "seed must be an integer >= 0, got -2"),
    ],
)
def test_bad_arguments_are_explained(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        data.DataLoader(Squares(4), **arguments)


def test_a_dataset_needs_a_length_and_indexing():
    with pytest.raises(TypeError, match="int is not a dataset. Fix: give it __len__"):
        data.DataLoader(3)
