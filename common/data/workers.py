"""Worker processes for a DataLoader. Batch n goes to worker n % num_workers, which loads
its batches in the order given and sends each back on its own pipe, so the batches arrive
in order with no reassembly. The main process waits on that pipe and on the worker's
process sentinel together: a worker that dies is noticed at once, never waited on forever."""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import queue
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from common.data.fetch import SAMPLE_INDEX, fetch
from common.processes import defined_in_main, main_hidden

# forkserver, preloaded with common.data: after the server's one start (~0.6 s on 2 cores)
# two workers give an epoch's first batch in ~0.12 s, where spawn takes ~0.85 s every epoch
# (each child imports numpy and common afresh); and unlike fork it copies no threads.
START_METHOD = "forkserver"
STOP_WAIT_S = 1.0  # how long a closing loader lets busy workers finish before terminating
PARENT_CHECK_S = 1.0  # how often an idle worker checks that its parent is still alive

Task = tuple[int, list[int], np.random.SeedSequence]  # batch number, sample indices, stream
EXIT_HINTS = {  # what usually makes a worker exit so
    -signal.SIGKILL: " SIGKILL often comes from the out-of-memory killer: try fewer workers or "
    "smaller batches.",
    1: " Its error is printed above. A worker that cannot unpickle the dataset exits so: define "
    "the dataset's class in a module the workers can import, not in a notebook cell.",
}


class DataLoaderWorkerError(RuntimeError):
    """A worker process failed: its dataset raised (the message holds the worker's
    traceback), or it died. `sample` is the index being read, when known."""

    def __init__(self, message: str, batch: int, sample: int | None = None) -> None:
        super().__init__(message)
        self.batch, self.sample = batch, sample


@dataclass(frozen=True)
class _Failure:
    """What a worker sends instead of a batch when loading it raised."""

    sample: int | None
    traceback: str


class WorkerPool:
    """`num_workers` processes loading batches of one dataset. submit(task) hands out the
    batch, receive(number) returns it (or raises DataLoaderWorkerError); close() stops them."""

    def __init__(self, dataset: Any, collate: Callable, num_workers: int) -> None:
        context = multiprocessing.get_context(START_METHOD)
        if START_METHOD == "forkserver":  # takes effect when the server starts
            context.set_forkserver_preload(["common.data"])
        self._tasks, self._results, self.processes = [], [], []
        needs_main = defined_in_main(dataset, collate)  # else: no main guard needed
        try:
            with contextlib.nullcontext() if needs_main else main_hidden():
                for worker in range(num_workers):
                    self._start(context, worker, dataset, collate)
        except Exception as error:  # most often: the dataset would not pickle
            error.add_note(
                "DataLoader: each worker receives the dataset and collate pickled. Fix: define "
                "their classes at module level; keep lambdas and open files out of them."
            )
            self.close()
            raise

    def _start(self, context: Any, worker: int, dataset: Any, collate: Callable) -> None:
        tasks, (results, send_end) = context.Queue(), context.Pipe(duplex=False)
        process = context.Process(
            target=_work,
            args=(dataset, collate, tasks, send_end),
            name=f"DataLoader worker {worker}",
            daemon=True,  # multiprocessing terminates it if the main process exits
        )
        process.start()
        send_end.close()  # the worker holds the only send end: its death reads as EOF
        self._tasks.append(tasks)
        self._results.append(results)
        self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def submit(self, task: Task) -> None:
        self._tasks[task[0] % len(self.processes)].put(task)

    def receive(self, number: int) -> Any:
        """Batch `number`, once its worker has sent it."""
        worker = number % len(self.processes)
        results, process = self._results[worker], self.processes[worker]
        wait([results, process.sentinel])
        try:
            if not results.poll():  # woken by the sentinel alone: the worker is gone
                raise EOFError
            sent_number, payload = results.recv()
        except EOFError:  # or the pipe closed without a whole batch
            raise self._died(worker, number) from None
        assert sent_number == number, "each worker loads its batches in the order submitted"
        if isinstance(payload, _Failure):
            where = "" if payload.sample is None else f"sample {payload.sample} of "
            raise DataLoaderWorkerError(
                f"DataLoader worker {worker} failed on {where}batch {number}. The error in "
                f"the worker (pid {process.pid}):\n\n{payload.traceback}",
                batch=number,
                sample=payload.sample,
            )
        return payload

    def _died(self, worker: int, number: int) -> DataLoaderWorkerError:
        process = self.processes[worker]
        process.join(STOP_WAIT_S)
        code = process.exitcode
        if code is not None and code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        return DataLoaderWorkerError(
            f"DataLoader worker {worker} (pid {process.pid}) {how} while loading batch "
            f"{number}.{EXIT_HINTS.get(code, '')}",
            batch=number,
        )

    def close(self) -> None:
        """Stop every worker: idle ones at once, busy ones after their batch (their next send
        finds the pipe closed), stragglers terminated after STOP_WAIT_S."""
        for tasks in self._tasks:
            tasks.put(None)
        for results in self._results:
            results.close()
        deadline = time.monotonic() + STOP_WAIT_S
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join()
        for tasks in self._tasks:
            tasks.cancel_join_thread()  # tasks nobody will read must not block our exit
            tasks.close()


def _work(dataset: Any, collate: Callable, tasks: Any, results: Connection) -> None:
    """A worker process's life: load each task's batch and send it back, until told to stop,
    until the loader stops reading, or until the parent process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the main process to handle
    parent = multiprocessing.parent_process()
    while True:
        try:
            task = tasks.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return
            continue
        if task is None:
            return
        try:
            results.send_bytes(_message(task[0], _load(dataset, collate, task)))
        except (BrokenPipeError, ConnectionResetError):
            return  # the loader closed its end: it wants no more batches


def _load(dataset: Any, collate: Callable, task: Task) -> Any:
    number, indices, stream = task
    try:
        return fetch(dataset, indices, collate, stream)
    except Exception as error:  # the dataset's or collate's: reported, and the worker lives on
        return _Failure(getattr(error, SAMPLE_INDEX, None), traceback.format_exc())


def _message(number: int, payload: Any) -> bytes:
    """Batch `number` pickled; or, if it would not pickle, why (rather than lose it)."""
    try:
        return pickle.dumps((number, payload), pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps((number, _Failure(None, traceback.format_exc())))
