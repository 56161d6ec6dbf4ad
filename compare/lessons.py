"""What every lesson in docs/lessons shares: its size, its measured claims, its figures, and
the checker of its exercises.

A lesson is a jupytext percent-format script, `docs/lessons/NN_name.py`: it runs as a plain
script, opens as a notebook, and is executed when the site is built. It starts with

    from compare import lessons
    lessons.begin()            # `python NN_name.py --check` checks the exercises instead

and says what it measured with `lessons.claim(...)`, one sentence with its numbers, printed
whether the machine bore it out or not (the reader sees which). `DIPTYCH_LESSON_SIZE=small`
makes every lesson take its small sizes (tests and the site build use it).

Exercises: `docs/lessons/exercises/NN_name.py` holds stubs (`exercise_1`, ...) the student
fills in and the checks (`check_1`, ...) that judge them without printing a solution;
`docs/lessons/solutions/NN_name.py` holds worked answers, which the tests check.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from compare.checks import UsageError
from compare.timing import race, thread_limit

LESSONS = Path(__file__).resolve().parents[1] / "docs" / "lessons"
SIZE_VARIABLE = "DIPTYCH_LESSON_SIZE"
FIGURES_VARIABLE = "DIPTYCH_LESSON_FIGURES"
CLAIM = "claim: "
NOT_BORNE_OUT = "claim not borne out on this machine: "


# ---- inside a lesson ----------------------------------------------------------------------


def small() -> bool:
    """True when the lesson should take its small sizes (DIPTYCH_LESSON_SIZE=small)."""
    return os.environ.get(SIZE_VARIABLE, "").lower() == "small"


def size(default: Any, small_size: Any) -> Any:
    """The lesson's default size, or its small one under DIPTYCH_LESSON_SIZE=small."""
    return small_size if small() else default


def begin() -> None:
    """First call of every lesson: with `--check` on the command line, check the lesson's
    exercises and exit instead of running the lesson."""
    if "--check" in sys.argv[1:]:
        sys.exit(check(lesson_named(Path(sys.argv[0]).stem)))


def claim(sentence: str, holds: bool = True) -> None:
    """Print a measured claim. One the machine does not bear out is printed as such."""
    print((CLAIM if holds else NOT_BORNE_OUT) + sentence)


def claimed(output: str, pattern: str) -> float:
    """The number a printed claim states: group 1 of `pattern`, searched in the claim lines of
    a lesson's output only (tests check that a lesson said what it measured)."""
    claims = [line for line in output.splitlines() if line.startswith((CLAIM, NOT_BORNE_OUT))]
    for line in claims:
        found = re.search(pattern, line)
        if found:
            return float(found.group(1).replace(",", ""))
    raise AssertionError(f"no claim matches {pattern!r}; the claims were:\n" + "\n".join(claims))


def seconds_per_call(fn: Callable[[], Any], target_ms: float = 20, repeats: int = 5) -> float:
    """Median seconds per call of `fn`, timed like `diptych compare` does (see
    compare/timing.py). Several functions are better raced together: `race_seconds`."""
    return race_seconds({"fn": fn}, target_ms, repeats)["fn"]


def race_seconds(
    contenders: dict[str, Callable[[], Any]], target_ms: float = 20, repeats: int = 5
) -> dict[str, float]:
    """Median seconds per call of each contender, interleaved so that drift hits all alike,
    with BLAS and OpenMP on one thread (as `diptych compare` times by default: a shared
    machine's idle cores otherwise make the numbers swing)."""
    with thread_limit(1):
        stats = race(contenders, target_ns=int(target_ms * 1e6), repeats=repeats, warmup=1)
    return {name: s.median / 1e9 for name, s in stats.items()}


def figures() -> Path:
    """The folder a lesson writes its figures to: docs/lessons/figures, next to the pages
    that show them, or $DIPTYCH_LESSON_FIGURES."""
    folder = Path(os.environ.get(FIGURES_VARIABLE) or LESSONS / "figures")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def figure(name: str) -> Path:
    """Where to write the figure called `name` (e.g. "01_timeline.svg")."""
    return figures() / name


def show(path: str | Path) -> None:
    """Show a written figure: inline in a notebook (and on the site), its path in a terminal."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"figure {path} was not written; write it before show()")
    display = _notebook_display()
    if display is None:
        print(f"figure: {path}")
    elif path.suffix == ".svg":
        from IPython.display import SVG

        display(SVG(filename=str(path)))
    else:
        from IPython.display import Image

        display(Image(filename=str(path)))


def _notebook_display() -> Callable[[Any], Any] | None:
    """IPython's display() when running in a kernel, else None."""
    shell = sys.modules.get("IPython")
    if shell is None or shell.get_ipython() is None:
        return None
    if type(shell.get_ipython()).__name__ != "ZMQInteractiveShell":
        return None
    from IPython.display import display

    return display


# ---- finding lessons ----------------------------------------------------------------------


@dataclass(frozen=True)
class Lesson:
    number: int
    name: str  # the file stem: "03_two_layer_net"
    title: str
    path: Path

    @property
    def exercises(self) -> Path:
        return self.path.parent / "exercises" / self.path.name

    @property
    def solutions(self) -> Path:
        return self.path.parent / "solutions" / self.path.name


def all_lessons(folder: Path = LESSONS) -> list[Lesson]:
    """Every lesson in the folder, by number; the title is the first Markdown heading."""
    found = []
    for path in sorted(folder.glob("[0-9][0-9]_*.py")):
        heading = re.search(r"^# #+ (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
        title = heading.group(1).strip() if heading else path.stem
        found.append(Lesson(int(path.stem[:2]), path.stem, title, path))
    return found


def lesson_named(key: str | int) -> Lesson:
    """A lesson by number (3, "3", "03") or file stem ("03_two_layer_net")."""
    for lesson in all_lessons():
        if str(key) in (lesson.name, str(lesson.number), f"{lesson.number:02d}"):
            return lesson
    numbers = ", ".join(str(lesson.number) for lesson in all_lessons())
    raise UsageError(f"no lesson {key!r}; the lessons are {numbers} (`diptych lesson`)")


# ---- the exercise checker -----------------------------------------------------------------


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exercise_numbers(checks: ModuleType) -> list[int]:
    return sorted(int(n[6:]) for n in vars(checks) if re.fullmatch(r"check_\d+", n))


def check(lesson: Lesson, answers: Path | None = None) -> int:
    """Judge the answers (the student's exercises file, or another file that defines
    `exercise_N`) with the lesson's checks; print one line per exercise, never a solution.
    Returns 0 when every exercise passes, else 1."""
    checks = _load(lesson.exercises, f"checks_{lesson.name}")
    given = checks if answers is None else _load(Path(answers), f"answers_{lesson.name}")
    numbers = exercise_numbers(checks)
    passed = 0
    for n in numbers:
        attempt = getattr(given, f"exercise_{n}", None)
        verdict = _judge(getattr(checks, f"check_{n}"), attempt)
        passed += verdict == "passes"
        print(f"exercise {n}: {verdict}")
    print(f"{passed} of {len(numbers)} exercises of lesson {lesson.number} pass")
    return 0 if passed == len(numbers) else 1


def _judge(check_fn: Callable[[Callable[..., Any]], None], attempt: Any) -> str:
    if attempt is None:
        return "missing (define it in the exercises file)"
    try:
        check_fn(attempt)
    except NotImplementedError:
        return "not attempted yet"
    except AssertionError as e:
        return f"not yet: {e}" if str(e) else "not yet"
    except Exception as e:  # the student's code raised: say what, not where in the checker
        last = traceback.extract_tb(e.__traceback__)[-1]
        return f"not yet: it raised {type(e).__name__}: {e} (line {last.lineno})"
    return "passes"


# ---- `diptych lesson` ---------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lesson",
        help="list the lessons, run one, or check its exercises",
        description="Without a number: the lessons, one line each. With one: run that lesson "
        "in the terminal (plain text; figures are written to a folder that is printed).",
    )
    p.add_argument("number", nargs="?", help="the lesson's number (or its file name)")
    p.add_argument("--check", action="store_true", help="check the lesson's exercises")
    p.add_argument("--answers", type=Path, help="check this file's exercise_N functions instead")
    p.add_argument("--small", action="store_true", help="the lesson's small sizes (quick)")
    p.add_argument(
        "--figures", type=Path, help="write figures here (default: docs/lessons/figures)"
    )


def run_lesson_command(args: argparse.Namespace) -> int:
    if args.number is None:
        for lesson in all_lessons():
            print(f"{lesson.number:3d}  {lesson.title}")
        print(f"\n`diptych lesson N` runs one, `--check` checks its exercises ({LESSONS})")
        return 0
    lesson = lesson_named(args.number)
    if args.check or args.answers:
        return check(lesson, args.answers)
    env = dict(os.environ, MPLBACKEND="Agg")
    if args.small:
        env[SIZE_VARIABLE] = "small"
    if args.figures:
        env[FIGURES_VARIABLE] = str(args.figures.resolve())
    print(f"lesson {lesson.number}: {lesson.title}\n")
    code = subprocess.call([sys.executable, str(lesson.path)], env=env)
    print(f"\nfigures: {Path(env.get(FIGURES_VARIABLE) or LESSONS / 'figures')}")
    return code
