"""From sample indices to one batch: read dataset[i] for each index and collate the samples,
with common.random's default generator drawing from the batch's own stream. The calling
process and the worker processes load batches with this same function."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from common import random

SAMPLE_INDEX = "data_loader_index"  # set on an error raised by dataset[i]: the index i


def collate(samples: Sequence[Any]) -> Any:
    """Stack samples into a batch, as PyTorch's default_collate does: arrays and numbers
    become one array with a new leading batch axis; a tuple, list or dict of them is
    collated field by field; strings stay a list.

    collate([(x0, 0), (x1, 1)]) == (np.stack([x0, x1]), np.array([0, 1]))
    """
    first = samples[0]
    if isinstance(first, dict):
        return {key: collate([sample[key] for sample in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        fields = _fields(samples)
        if hasattr(first, "_fields"):  # a namedtuple keeps its type and its names
            return type(first)(*fields)
        return type(first)(fields)
    if isinstance(first, (str, bytes)):
        return list(samples)
    return _stack(samples)


def _fields(samples: Sequence[Sequence[Any]]) -> list[Any]:
    lengths = sorted({len(sample) for sample in samples})
    if len(lengths) != 1:
        raise ValueError(
            f"collate: the samples have {lengths} fields. Fix: return the same fields from "
            "every dataset[i]."
        )
    return [collate(field) for field in zip(*samples)]


def _stack(samples: Sequence[Any]) -> np.ndarray:
    arrays = [np.asarray(sample) for sample in samples]
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) != 1:
        raise ValueError(
            f"collate: the samples have different shapes {shapes}. Fix: give every sample "
            "one shape in the dataset, or pass DataLoader(collate=...) that pads them."
        )
    return np.stack(arrays)


def fetch(
    dataset: Any, indices: Sequence[int], collate: Callable, stream: np.random.SeedSequence
) -> Any:
    """The batch of `indices`. An error raised by dataset[i] says which i (a note, and the
    attribute SAMPLE_INDEX) and propagates unchanged otherwise."""
    with _default_generator_drawing_from(stream):
        return collate([_sample(dataset, index) for index in indices])


def _sample(dataset: Any, index: int) -> Any:
    try:
        return dataset[index]
    except Exception as error:
        error.add_note(f"raised by dataset[{index}] while the data loader read it")
        setattr(error, SAMPLE_INDEX, index)
        raise


@contextmanager
def _default_generator_drawing_from(stream: np.random.SeedSequence) -> Iterator[None]:
    """Within, common.random's default generator draws from `stream`; after, it resumes where
    it was. So a dataset's random augmentation depends on the batch, not on which process
    loaded it, and loading in the calling process leaves the caller's random draws alone."""
    bits = random.default_generator().bit_generator
    saved = bits.state
    bits.state = type(bits)(stream).state
    try:
        yield
    finally:
        bits.state = saved
