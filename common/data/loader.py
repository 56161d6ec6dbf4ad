"""DataLoader: a dataset's samples in batches of numpy arrays, with PyTorch's semantics,
loaded in the calling process or ahead of time in worker processes. Both engines take the
batches as they are: E.tensor(xb), or a compiled function's arguments."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from common import random
from common.data.fetch import collate as default_collate
from common.data.fetch import fetch
from common.data.workers import Task, WorkerPool


@runtime_checkable
class Dataset(Protocol):
    """What a DataLoader reads: a length, and the sample at each index 0 .. len - 1. A sample
    is an array, a number, or a tuple, list or dict of them (collated field by field)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class DataLoader:
    """Batches of a Dataset, as PyTorch's DataLoader gives them.

        loader = DataLoader(splits.train, batch_size=32, shuffle=True, seed=0, num_workers=2)
        for epoch in range(3):
            for xb, yb in loader:  # each pass over the loader is a new epoch
                loss = step(xb, yb)

    Epoch e is shuffled by a generator seeded with (seed, e), so any run can be replayed; while
    batch n is loaded, common.random's default generator draws from a stream seeded with
    (seed, e, n), so random augmentation repeats too. The batches are the same whatever the
    number of workers. With workers, up to `prefetch` batches per worker are loaded ahead, in
    processes that hold a pickled copy of the dataset and stop when the epoch ends, the loop
    breaks, or the iterator is closed or dropped. A dataset class must be importable by the
    workers: defined in a module, not in a notebook cell.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        num_workers: int = 0,
        prefetch: int = 2,
        collate: Callable | None = None,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"DataLoader: {type(dataset).__name__} is not a dataset. Fix: give it "
                "__len__ and __getitem__(index), or wrap arrays in data.ArrayDataset(x, y)."
            )
        _check_integer("batch_size", batch_size, least=1)
        _check_integer("num_workers", num_workers, least=0)
        _check_integer("prefetch", prefetch, least=1)
        if seed is not None:
            _check_integer("seed", seed, least=0)
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.num_workers, self.prefetch = drop_last, num_workers, prefetch
        self.collate = collate or default_collate
        # no seed: draw one from the default generator, so random.manual_seed fixes it
        self.seed = int(random.default_generator().integers(2**63)) if seed is None else seed
        self.epoch = 0  # epochs started so far: the next pass over the loader is this one

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_indices(self, epoch: int) -> list[list[int]]:
        """The sample indices of each batch of epoch `epoch`, in order."""
        n = len(self.dataset)
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        return [order[start : start + self.batch_size].tolist() for start in self._starts()]

    def _starts(self) -> range:
        stop = len(self) * self.batch_size if self.drop_last else len(self.dataset)
        return range(0, stop, self.batch_size)

    def __iter__(self) -> Batches:
        epoch, self.epoch = self.epoch, self.epoch + 1
        tasks = [
            (number, indices, np.random.SeedSequence([self.seed, epoch], spawn_key=(number,)))
            for number, indices in enumerate(self.batch_indices(epoch))
        ]
        return Batches(self, tasks)


class Batches:
    """One epoch's batches, in order. Leaving a `with` block, close(), the last batch, or
    dropping the iterator (a loop's `break` does) stops its worker processes."""

    def __init__(self, loader: DataLoader, tasks: list[Task]) -> None:
        self._loader, self._tasks, self._next, self._submitted = loader, tasks, 0, 0
        self._pool = None
        if loader.num_workers and tasks:
            self._pool = WorkerPool(loader.dataset, loader.collate, loader.num_workers)
            self._close = weakref.finalize(self, self._pool.close)  # not bound to self
            self._submit_ahead()

    @property
    def worker_pids(self) -> list[int]:
        return [] if self._pool is None else self._pool.pids

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> Any:
        if self._next == len(self._tasks):
            self.close()
            raise StopIteration
        number, indices, stream = self._tasks[self._next]
        self._next += 1
        if self._pool is None:
            return fetch(self._loader.dataset, indices, self._loader.collate, stream)
        try:
            batch = self._pool.receive(number)
        except BaseException:
            self.close()
            raise
        self._submit_ahead()
        return batch

    def _submit_ahead(self) -> None:
        """Keep `prefetch` batches per worker submitted beyond the next one to be read."""
        window = self._loader.prefetch * self._loader.num_workers
        while self._submitted < min(len(self._tasks), self._next + window):
            self._pool.submit(self._tasks[self._submitted])
            self._submitted += 1

    def close(self) -> None:
        self._next = len(self._tasks)
        if self._pool is not None:
            self._close()

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_integer(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(
            f"DataLoader: {name} must be an integer >= {least}, got {value!r}."
            + (" Fix: 0 loads in this process." if name == "num_workers" else "")
        )
