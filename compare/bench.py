"""`diptych bench`: issue 14's table in one run. Each row races diptych against a peer (torch,
jax, or numpy and numba written by hand), interleaved by compare.timing.race, and prints the
ratio and whether the row's target holds: PASS or MISS, never hidden; a peer that is not
installed is said to be. The numbers are this machine's, so the machine, the thread policy
and the memory bandwidth measured in the same run are printed and saved with them.

    diptych bench [--quick] [--rows 1 5] [--threads N] [--json PATH]

The contenders (compare/contenders.py) are shared with benchmarks/ (eager_overhead.py,
compiled_overhead.py, passes.py, warm_start.py), which print more detail about each.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from common import nn
from compare import peers, zoo
from compare.checks import at_least, check_output
from compare.contenders import (
    FORWARD_SIZES,
    LOSS_TOLERANCE,
    build_mlp,
    chain_peers,
    compile_training_step,
    first_losses,
    gelu,
    make_compiled_step,
    make_diptych_step,
    make_jax_step,
    make_numpy_step,
    make_torch_step,
    numba_by_hand,
    numpy_forward,
    peer,
    pythagoras,
    training_setup,
    triad_probe,
)
from compare.schema import MAYBE_NUMBER, NUMBER, errors
from compare.schema import SCHEMA as COMPARE_SCHEMA
from compare.timing import (
    THREADS_HELP,
    machine,
    machine_text,
    nbytes,
    race,
    seconds,
    table_text,
    thread_limit,
)

SCHEMA_ID = "diptych.bench/1"
PASS, MISS, NO_PEER = "PASS", "MISS", "no peer"
WORK = {  # the rows
    1: "digits MLP 64-128-64-10 SGD step, batch 64, eager",
    2: "the same step compiled (optimize=2)",
    3: "MLP 784-256-256-10 forward, batch 1; O2 <= O0 at every zoo model",
    4: "one op with autograd recording, 16 float32 elements",
    5: "sqrt(a*a+b*b) on float32, compiled, default call",
    6: "GELU (tanh form) on float32, compiled",
    7: "first call of the compiled digits step in a fresh process (imports excluded)",
    8: "peak memory, MLP forward+backward",
}


@dataclass(frozen=True)
class Sizes:
    """How much work each row does: the issue's sizes, or --quick's (for tests)."""

    elements: int  # rows 5 and 6
    target_ms: float  # each timing sample loops for about this long
    repeats: int
    chain_target_ms: float  # rows 5 and 6, whose calls take milliseconds
    chain_repeats: int
    zoo_test_sizes: bool  # row 3's zoo models at their test sizes, not their defaults
    memory_batch: int  # row 8
    torch_compile: bool  # it takes 7-20 s to compile on two cores


FULL = Sizes(10_000_000, 20, 21, 200, 7, False, 1024, True)
QUICK = Sizes(50_000, 2, 5, 5, 5, True, 64, False)


# ---- rows and their targets --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str  # "ratio": value/against <= bound; "at most": value <= bound (seconds);
    bound: float  # "bandwidth": the fraction of the triad's bandwidth >= bound

    @property
    def text(self) -> str:
        if self.kind == "ratio":
            return f"<= {self.bound:g}x"
        if self.kind == "at most":
            return f"<= {seconds(self.bound)}"
        return f">= {self.bound:.0%} of bandwidth"


@dataclass
class Row:
    item: int  # the row, 1-8
    case: str  # what this line measures within the item
    mode: str  # diptych's contender: "eager", "compiled O2"
    value: float  # seconds per call, or bytes (unit "B")
    target: Target
    against: str = ""  # what it is measured against, in the same run
    against_value: float | None = None
    against_status: str = "measured"  # or "not installed", "left out (--quick)", ...
    unit: str = "s"
    moved_bytes: int | None = None  # read and written by each call (rows 5 and 6)
    bandwidth: float | None = None  # bytes/s of the triad raced alongside

    @property
    def ratio(self) -> float | None:
        return None if self.against_value is None else self.value / self.against_value

    def fraction(self, value: float | None) -> float | None:
        """Of the bandwidth, at `value` seconds per call."""
        if value is None or self.moved_bytes is None or self.bandwidth is None:
            return None
        return self.moved_bytes / value / self.bandwidth

    @property
    def verdict(self) -> str:
        kind, bound = self.target.kind, self.target.bound
        if kind == "bandwidth":
            return PASS if self.fraction(self.value) >= bound else MISS
        if kind == "at most":
            return PASS if self.value <= bound else MISS
        return NO_PEER if self.ratio is None else PASS if self.ratio <= bound else MISS


def raced(
    item: int,
    case: str,
    mode: str,
    target: Target,
    times: dict[str, float],
    against: str = "",
    missing: dict[str, str] | None = None,
    **extra: Any,
) -> Row:
    """The row of `mode` against `against`, both from the same race's `times` (seconds per
    call); `missing` says why a contender that is not in `times` is not."""
    row = Row(item, case, mode, times[mode], target, against, **extra)
    if against in times:
        row.against_value = times[against]
    elif against:
        row.against_status = (missing or {}).get(against, "not measured")
    return row


def timed(contenders: dict[str, Callable], target_ms: float, repeats: int) -> dict[str, float]:
    """Median seconds per call of each contender, raced (two warm-up calls each first)."""
    stats = race(contenders, int(target_ms * 1e6), repeats, warmup=2)
    return {name: s.median / 1e9 for name, s in stats.items()}


# ---- the measurements, row by row --------------------------------------------------------


def step_rows(sizes: Sizes) -> list[Row]:
    """Rows 1 and 2, from one race of the same SGD step written five ways."""
    x, y, weights = training_setup()
    factories = {"numpy by hand": make_numpy_step, "eager": make_diptych_step,
                 "compiled O2": make_compiled_step, "torch eager": make_torch_step,
                 "jax.jit": make_jax_step}  # fmt: skip
    missing = {"torch eager": peer("torch")[1], "jax.jit": peer("jax")[1]}
    steps = {name: make(weights, x, y) for name, make in factories.items() if not missing.get(name)}
    losses = first_losses(steps)
    worst = max(abs(a - b) for ls in losses.values() for a, b in zip(ls, losses["eager"]))
    if worst > LOSS_TOLERANCE:
        raise RuntimeError(f"the digits steps disagree (losses {losses}): not the same work")
    t = timed(steps, sizes.target_ms, sizes.repeats)
    return [
        raced(1, "vs torch eager", "eager", Target("ratio", 1), t, "torch eager", missing),
        raced(2, "vs jax.jit", "compiled O2", Target("ratio", 1), t, "jax.jit", missing),
        raced(2, "vs numpy by hand", "compiled O2", Target("ratio", 1.1), t, "numpy by hand"),
    ]


def forward_rows(sizes: Sizes) -> list[Row]:
    E.manual_seed(0)
    model = build_mlp(nn, FORWARD_SIZES)
    w = [p.numpy() for p in model.parameters()]
    layers = [(np.ascontiguousarray(a.T), b.copy()) for a, b in zip(w[0::2], w[1::2])]
    x = np.random.default_rng(0).standard_normal((1, FORWARD_SIZES[0])).astype(np.float32)
    x_sym = S.placeholder(x.shape, name="x")
    contenders = {"numpy by hand": partial(numpy_forward, layers, x)}
    for level in (0, 2):
        contenders[f"O{level}"] = partial(S.compile(model(x_sym), [x_sym], optimize=level), x)
    t = timed(contenders, sizes.target_ms, sizes.repeats)
    return [
        raced(3, "MLP forward", "O0", Target("ratio", 1.1), t, "numpy by hand"),
        raced(3, "MLP forward", "O2", Target("ratio", 1), t, "O0"),
        *(zoo_row(zoo_model, sizes) for zoo_model in zoo.MODELS.values()),
    ]


def zoo_row(model: zoo.Model, sizes: Sizes) -> Row:
    """The step `diptych compare` times (loss, outputs, gradients) at optimize 2 against 0."""
    from compare.harness import Case, Settings

    batch, size = model.test_sizes if sizes.zoo_test_sizes else (None, None)
    case = Case(model, Settings(batch=batch, size=size))
    steps = {f"O{level}": case.symbolic(level).step for level in (0, 2)}
    t = timed(steps, sizes.target_ms, max(5, sizes.repeats // 2))
    where = f"zoo {model.name} (batch {case.batch}, size {case.size}) step"
    return raced(3, where, "O2", Target("ratio", 1), t, "O0")


def op_rows(sizes: Sizes) -> list[Row]:
    """Row 4: grad mode is set around the race, so each call times the op alone."""
    torch, why = peer("torch")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(16).astype(np.float32) for _ in range(2))
    operands = {"eager": (E.tensor(a, requires_grad=True), E.tensor(b))}
    if torch is not None:
        operands["torch"] = (torch.from_numpy(a.copy()).requires_grad_(), torch.from_numpy(b))
    ops = {"x + 1.0": lambda x, y: x + 1.0, "x + y": lambda x, y: x + y}
    rows = []
    for recording, bound in ((True, 2.5e-6), (False, 2.0e-6)):
        contenders = {
            f"{who}: {op}": partial(fn, *args) for op, fn in ops.items()
            for who, args in operands.items()
        }  # fmt: skip
        with contextlib.ExitStack() as scope:
            if not recording:
                scope.enter_context(E.no_grad())
                scope.enter_context(torch.no_grad() if torch else contextlib.nullcontext())
            t = timed(contenders, sizes.target_ms, sizes.repeats)
        for op in ops:
            times = {who: t[f"{who}: {op}"] for who in operands}
            case = f"{op}, {'recording' if recording else 'under no_grad'}"
            target = Target("at most", bound)
            rows.append(raced(4, case, "eager", target, times, "torch", {"torch": why}))
    return rows


def chain_rows(sizes: Sizes) -> list[Row]:
    """Rows 5 and 6. Each chain races with the bandwidth probe, so its fraction of the
    bandwidth is of the bandwidth measured under the same load."""
    n, rng = sizes.elements, np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    probe, triad, triad_bytes = triad_probe(n)
    x, y = S.placeholder((n,), name="x"), S.placeholder((n,), name="y")
    missing: dict[str, str] = {}
    races = {
        5: {probe: triad, "O2": partial(S.compile(pythagoras(F, x, y), [x, y]), a, b)},
        6: {probe: triad, "O2": partial(S.compile(gelu(F, x), [x]), a)},
    }
    numba, missing["numba by hand, out="] = peer("numba")
    if numba is not None:  # the reference: one parallel loop written by hand
        races[5]["numba by hand, out="] = partial(numba_by_hand()[1], np.empty_like(a), a, b)
    races[6].update(chain_peers(gelu, [a], sizes.torch_compile, missing))
    rows = []
    for item, contenders in races.items():
        t = timed(contenders, sizes.chain_target_ms, sizes.chain_repeats)
        bandwidth = triad_bytes / t[probe]
        moved = dict(moved_bytes=(3 if item == 5 else 2) * a.nbytes, bandwidth=bandwidth)
        case = f"{n:,} elements"
        probed = f"{case}; {probe}: {bandwidth / 1e9:.1f} GB/s"
        if item == 5:
            target = Target("bandwidth", 0.8)
            rows.append(raced(5, probed, "O2", target, t, "numba by hand, out=", missing, **moved))
            continue
        rows += [
            raced(6, case, "O2", Target("ratio", 1), t, name, missing, **moved)
            for name in ("jax.jit", "torch.compile")
        ]
        rows.append(raced(6, probed, "O2", Target("bandwidth", 0.6), t, **moved))
    return rows


CHILD = "import sys; from compare.bench import first_call_child; first_call_child(sys.argv[1])"


def first_call_child(kind: str) -> None:
    """Run in a fresh process: build the digits step ("compiled" or "jax") and call it once;
    print the seconds that took as JSON. Imports (numba's, jax's) and jax's backend start
    happen before the clock starts."""
    x, y, weights = training_setup()
    if kind == "jax":
        import jax

        jax.devices()
    elif peer("numba")[0] is not None:
        import numba  # noqa: F401 (fused kernels import it on their first call)
    start, kernels = time.perf_counter(), 0
    if kind == "jax":
        make_jax_step(weights, x, y)()
    else:
        step = compile_training_step(weights, optimize=2)
        step(x, y)
        kernels = len(step.report.fused_kernels)
    print(json.dumps({"first_call_s": time.perf_counter() - start, "fused_kernels": kernels}))


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """The JSON a fresh Python process running `code` prints last."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_call_rows(sizes: Sizes) -> list[Row]:
    with tempfile.TemporaryDirectory() as cache:  # one empty kernel cache: cold, then warm
        cold, warm = (run_child(CHILD, "compiled", env={"DIPTYCH_CACHE": cache}) for _ in "cw")
    jax, why = peer("jax")
    jax_time = {"jax.jit": run_child(CHILD, "jax")["first_call_s"]} if jax is not None else {}
    kernels = f"{cold['fused_kernels']} fused kernels"
    return [
        raced(7, f"{state} kernel cache ({kernels})", "compiled O2", target,
              {"compiled O2": child["first_call_s"], **jax_time}, "jax.jit", {"jax.jit": why})
        for state, child, target in (
            ("cold", cold, Target("ratio", 1)),
            ("warm", warm, Target("at most", 0.1)),
        )
    ]  # fmt: skip


def memory_rows(sizes: Sizes) -> list[Row]:
    """Peaks as `diptych compare` measures them (tracemalloc over a steady step, plus the
    compiled plan's buffer pool)."""
    from compare.harness import Case, Settings, first_calls

    case = Case(zoo.get("mlp_digits"), Settings(batch=sizes.memory_batch))
    eager, compiled = (c.row for c in first_calls([case.eager(), case.symbolic(2)], case, []))
    peaks = {"compiled O2": compiled.peak_bytes, "eager": eager.peak_bytes}
    case_text = f"mlp_digits at batch {case.batch}"
    return [raced(8, case_text, "compiled O2", Target("ratio", 0.6), peaks, "eager", unit="B")]


MEASURE: dict[int, Callable[[Sizes], list[Row]]] = {
    1: step_rows,  # rows 1 and 2
    3: forward_rows,
    4: op_rows,
    5: chain_rows,  # rows 5 and 6
    7: first_call_rows,
    8: memory_rows,
}
ITEMS = {1: 1, 2: 1, 3: 3, 4: 4, 5: 5, 6: 5, 7: 7, 8: 8}  # the row -> its MEASURE


def measure(sizes: Sizes, items: list[int], say: Callable[[str], None]) -> list[Row]:
    """The rows of `items`. What is alive before each measurement (torch's and jax's modules,
    mostly) is frozen out of the garbage collector, whose full collection before every round
    of a race would otherwise take a quarter of a second."""
    rows = []
    try:
        for key in dict.fromkeys(ITEMS[i] for i in sorted(items)):
            say(f"measuring row {key}: {WORK[key]}")
            gc.freeze()
            rows += [row for row in MEASURE[key](sizes) if row.item in items]
    finally:
        gc.unfreeze()
    return rows


def numba_threads_note(threads: int) -> list[str]:
    """How many threads numba's parallel loops (the fused kernels', the probe's) ran on, when
    one ran: numba's OpenMP threading layer obeys the policy's OpenMP limit."""
    numba = sys.modules.get("numba")
    try:
        layer = numba.threading_layer()
    except (AttributeError, ValueError):  # numba not loaded, or no parallel loop ran
        return []
    count = threads if layer == "omp" and threads > 0 else numba.get_num_threads()
    return [f"numba's parallel loops ran on {count} thread(s) (threading layer {layer})"]


# ---- the table and the JSON --------------------------------------------------------------


def amount(row: Row, value: float | None) -> str:
    if row.unit == "B":
        return nbytes(int(value))
    fraction = row.fraction(value)
    return seconds(value) + ("" if fraction is None else f" ({fraction:.0%} of bw)")


def cells(row: Row) -> list[str]:
    against = "-"
    if row.against:
        shown = row.against_status if row.against_value is None else amount(row, row.against_value)
        against = f"{row.against}: {shown}"
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    return [row.case, f"{row.mode}: {amount(row, row.value)}", against, ratio, row.target.text,
            row.verdict]  # fmt: skip


def table(rows: list[Row]) -> str:
    """One table; each of the issue's rows is headed by its number and what it measures."""
    headers = ["", "diptych", "against (same run)", "ratio", "target", "verdict"]
    lines = ["  " + line for line in table_text(headers, [cells(r) for r in rows]).splitlines()]
    out = lines[:2]
    for i, (row, line) in enumerate(zip(rows, lines[2:])):
        if i == 0 or rows[i - 1].item != row.item:
            out.append(f"{row.item}. {WORK[row.item]}")
        out.append(line)
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    verdicts = [r.verdict for r in rows]
    missed = sorted({r.item for r in rows if r.verdict == MISS})
    unjudged = verdicts.count(NO_PEER)
    return (
        f"{verdicts.count(PASS)} of {len(rows)} targets hold, {verdicts.count(MISS)} missed"
        + (f" (row{'s' * (len(missed) > 1)} {', '.join(map(str, missed))})" if missed else "")
        + (f", {unjudged} without their peer" if unjudged else "")
    )


def row_json(row: Row) -> dict[str, Any]:
    return {
        "item": row.item,
        "work": WORK[row.item],
        "case": row.case,
        "mode": row.mode,
        "value": row.value,
        "unit": row.unit,
        "against": row.against,
        "against_value": row.against_value,
        "against_status": row.against_status,
        "ratio": row.ratio,
        "bandwidth_bytes_per_s": row.bandwidth,
        "bandwidth_fraction": row.fraction(row.value),
        "against_bandwidth_fraction": row.fraction(row.against_value),
        "target": {"kind": row.target.kind, "bound": row.target.bound, "text": row.target.text},
        "verdict": row.verdict,
    }


ROW_SCHEMA = {
    "type": "object",
    "required": ["item", "work", "case", "mode", "value", "unit", "against", "against_value",
                 "against_status", "ratio", "bandwidth_bytes_per_s", "bandwidth_fraction",
                 "against_bandwidth_fraction", "target", "verdict"],
    "additionalProperties": False,
    "properties": {
        "item": {"type": "integer"},  # the row, 1-8
        "work": {"type": "string"},
        "case": {"type": "string"},
        "mode": {"type": "string"},
        "value": NUMBER,  # seconds per call, or bytes (unit "B")
        "unit": {"enum": ["s", "B"]},
        "against": {"type": "string"},  # "" where the target is not a ratio
        "against_value": MAYBE_NUMBER,  # null: see against_status
        "against_status": {"type": "string"},  # "measured", "not installed", ...
        "ratio": MAYBE_NUMBER,  # value / against_value
        "bandwidth_bytes_per_s": MAYBE_NUMBER,  # the probe's, raced alongside (rows 5 and 6)
        "bandwidth_fraction": MAYBE_NUMBER,
        "against_bandwidth_fraction": MAYBE_NUMBER,
        "target": {
            "type": "object",
            "required": ["kind", "bound", "text"],
            "properties": {"kind": {"enum": ["ratio", "at most", "bandwidth"]}, "bound": NUMBER},
        },
        "verdict": {"enum": [PASS, MISS, NO_PEER]},
    },
}  # fmt: skip
SCHEMA = {
    "$id": SCHEMA_ID,
    "title": "diptych bench results",
    "type": "object",
    "required": ["schema", "machine", "quick", "rows", "notes", "summary"],
    "additionalProperties": False,
    "properties": {
        "schema": {"enum": [SCHEMA_ID]},
        "machine": COMPARE_SCHEMA["properties"]["machine"],  # as `diptych compare --json`'s
        "quick": {"type": "boolean"},
        "rows": {"type": "array", "items": ROW_SCHEMA},
        "notes": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
    },
}


def document(rows: list[Row], info: dict, quick: bool, notes: list[str]) -> dict[str, Any]:
    """The results as JSON, checked against SCHEMA."""
    doc = {"schema": SCHEMA_ID, "machine": info, "quick": quick,
           "rows": [row_json(r) for r in rows], "notes": notes,
           "summary": summary(rows)}  # fmt: skip
    problems = errors(doc, SCHEMA)
    if problems:
        raise ValueError("not a valid diptych bench document:\n  " + "\n  ".join(problems))
    return doc


# ---- `diptych bench` ---------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="issue 14's table: diptych against torch, jax and numpy, with the targets",
        description="Race diptych against its peers in one run, row by row, and say whether "
        "each target holds (PASS or MISS).",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, no torch.compile (tests)")
    p.add_argument("--rows", type=int, nargs="+", choices=sorted(WORK), metavar="N",
                   help="only these rows of the table (default: all)")  # fmt: skip
    p.add_argument("--json", metavar="PATH", help=f"write the results ({SCHEMA_ID})")
    p.add_argument("--threads", type=at_least(0), default=1, help=THREADS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run_bench_command(args: argparse.Namespace) -> int:
    if args.json:
        check_output(args.json, (".json",), "--json")
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    start = time.perf_counter()
    with thread_limit(args.threads, ("torch",)) as policy:
        info = {**machine(), "threads": policy}
        for name in ("torch", "jax"):
            info["libraries"].setdefault(name, peers.version_line(name))
        print(machine_text(info))
        rows = measure(QUICK if args.quick else FULL, args.rows or sorted(WORK), say)
    notes = numba_threads_note(args.threads)
    if args.quick:
        notes.append("--quick: small sizes, to check the harness; the verdicts say little")
    print(f"\n{table(rows)}\n", *notes, sep="\n")
    print(f"\n{summary(rows)}; {time.perf_counter() - start:.0f} s")
    if args.json:
        from compare.report import write_json

        write_json(document(rows, info, args.quick, notes), args.json)
        print(f"wrote {args.json}")
    return 0
