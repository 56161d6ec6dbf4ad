"""Data for both engines: ready datasets, the Dataset protocol, and DataLoader (batches of
numpy arrays, shuffled reproducibly, loaded in worker processes if asked).

    from common import data
    splits = data.digits()
    for xb, yb in data.DataLoader(splits.train, batch_size=32, shuffle=True, num_workers=2):
        ...
"""

from common.data.augment import Augmented
from common.data.datasets import ArrayDataset, Splits, batches, digits
from common.data.fetch import collate
from common.data.loader import Batches, DataLoader, Dataset
from common.data.workers import DataLoaderWorkerError

__all__ = [
    "ArrayDataset",
    "Augmented",
    "Batches",
    "DataLoader",
    "DataLoaderWorkerError",
    "Dataset",
    "Splits",
    "batches",
    "collate",
    "digits",
]
