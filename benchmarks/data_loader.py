"""Batches per second from common.data.DataLoader with 0, 1 and 2 worker processes, on the
digits augmented sample by sample (data.Augmented: rotate, scale, shift, distort, add noise,
in numpy), side by side in one run.

    python benchmarks/data_loader.py [--quick] [--batch 64] [--epochs 3] [--threads N]

Every worker count reads the same epochs from a fresh loader with seed 0, so its batches
must be identical: the script checks it. Workers start again each epoch: "first batch" is
the wait for an epoch's first batch, start-up included, and "batches/s" counts every batch
of every epoch over the whole time. The fork server that starts the workers starts once per
Python process; its start is timed apart. Only loading is timed: a training step in the
loop would overlap with the workers' loading, where with no workers it waits for it.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from dataclasses import dataclass

from common import data
from compare.checks import at_least
from compare.timing import THREADS_HELP, machine, machine_text, table_text, thread_limit

WORKER_COUNTS = (0, 1, 2)


@dataclass(frozen=True)
class Run:
    workers: int
    batches: int
    seconds: float
    first_batch_s: float  # the median over epochs
    digest: str  # of every batch read, in order


def read_epochs(dataset: data.Dataset, workers: int, batch: int, epochs: int) -> Run:
    loader = data.DataLoader(dataset, batch_size=batch, shuffle=True, seed=0, num_workers=workers)
    digest, first_batch_s, count = hashlib.sha256(), [], 0
    start = time.perf_counter()
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        for number, (images, labels) in enumerate(loader):
            if number == 0:
                first_batch_s.append(time.perf_counter() - epoch_start)
            digest.update(images.tobytes() + labels.tobytes())
            count += 1
    seconds = time.perf_counter() - start
    return Run(workers, count, seconds, statistics.median(first_batch_s), digest.hexdigest())


def seconds_per_sample(dataset: data.Dataset, samples: int = 200) -> float:
    start = time.perf_counter()
    for index in range(samples):
        dataset[index]
    return (time.perf_counter() - start) / samples


def start_fork_server(dataset: data.Dataset) -> float:
    """Seconds to the first batch of a first one-worker loader: the fork server's start."""
    start = time.perf_counter()
    next(iter(data.DataLoader(dataset, batch_size=1, num_workers=1)))
    return time.perf_counter() - start


def table(runs: list[Run]) -> str:
    rows = [
        [
            str(run.workers),
            f"{run.batches / run.seconds:.1f}",
            f"{runs[0].seconds / run.seconds:.2f}x",
            f"{run.first_batch_s * 1e3:.0f} ms",
        ]
        for run in runs
    ]
    return table_text(["workers", "batches/s", "vs 0 workers", "first batch"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one epoch (the default is 3)")
    parser.add_argument("--batch", type=at_least(1), default=64)
    parser.add_argument("--epochs", type=at_least(1), default=None)
    parser.add_argument("--threads", type=at_least(0), default=1, help=THREADS_HELP)
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 3)
    splits = data.digits(images=True)
    dataset = data.Augmented(splits.x_train, splits.y_train)
    with thread_limit(args.threads) as policy:
        print(machine_text({**machine(), "threads": policy}))
        per_sample = seconds_per_sample(dataset)
        server = start_fork_server(dataset)
        runs = [read_epochs(dataset, n, args.batch, epochs) for n in WORKER_COUNTS]
    print(
        f"\n{len(dataset)} digits enlarged to 28x28 and augmented: {per_sample * 1e3:.2f} ms a "
        f"sample in this process; batches of {args.batch}, {epochs} epoch(s), "
        f"{runs[0].batches} batches per worker count.\n"
        f"The fork server that starts workers started once, in {server:.2f} s.\n"
    )
    print(table(runs))
    same = len({run.digest for run in runs}) == 1
    print(f"\nthe same batches at every worker count: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("the batches differ between worker counts")


if __name__ == "__main__":
    main()
