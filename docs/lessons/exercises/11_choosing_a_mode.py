"""Exercises for lesson 11 (docs/lessons/11_choosing_a_mode.py). Fill in each function, then
run `python docs/lessons/11_choosing_a_mode.py --check` (or `diptych lesson 11 --check`)."""

import hashlib

SITUATIONS = (
    "printing intermediate values while debugging a new model",
    "10,000 training steps of a small MLP on fixed-size batches",
    "a GELU chain evaluated once per batch on 10 million elements, for a whole epoch",
    "a sentence model called once per sentence, each sentence a new length, no padding",
    "a Python float learning rate baked into the step, changed at every step",
    "a gradient penalty (a gradient of a gradient) in every one of 5,000 steps",
)
# sha256 of "situation=answer", so that reading the check does not give the quiz away
_DIGESTS = ("cfbcf98249c9", "9bedcee0acfe", "b72cb7f247a2", "3f2fc180acf9", "4ba4d1f23d58",
            "b4d25fca3280")  # fmt: skip


def exercise_1(compile_s, eager_s, compiled_s, calls):
    """A program will be called `calls` times. Eagerly each call takes `eager_s` seconds;
    compiled, each takes `compiled_s` after one compile of `compile_s`. Return "eager" or
    "compiled": whichever finishes all the calls sooner ("eager" on a tie)."""
    raise NotImplementedError("your code here")


def exercise_2(shapes, trace_s, eager_s, compiled_s):
    """The same choice for a traced function (`S.function`): it is called once per entry of
    `shapes` (each the input's shape at that call), and each shape it has not seen before
    costs `trace_s` seconds of tracing and compiling on top of the call. Return "eager" or
    "compiled" ("eager" on a tie)."""
    raise NotImplementedError("your code here")


def exercise_3():
    """Return a dict mapping each entry of SITUATIONS to "eager" or "compiled": the mode the
    lesson's guide and measurements recommend for it."""
    raise NotImplementedError("your code here")


def check_1(exercise_1):
    assert exercise_1(0.5, 0.002, 0.001, 10_000) == "compiled", (
        "10,000 calls saving 1 ms each: does that repay 0.5 s of compiling?"
    )
    assert exercise_1(0.5, 0.002, 0.001, 100) == "eager", (
        "100 calls saving 1 ms each: does that repay 0.5 s of compiling?"
    )
    assert exercise_1(0.0, 0.001, 0.002, 10_000) == "eager", "a slower compiled call never wins"
    assert exercise_1(0.1, 0.002, 0.001, 100) == "eager", "on a tie, answer eager"


def check_2(exercise_2):
    same = [(32, 10)] * 1000
    varying = [(32, length) for length in range(1, 1001)]
    assert exercise_2(same, 0.01, 0.002, 0.001) == "compiled", (
        "one shape, 1,000 calls: a single trace, then 1 ms saved per call"
    )
    assert exercise_2(varying, 0.01, 0.002, 0.001) == "eager", (
        "1,000 different shapes: how many traces is that?"
    )
    cycling = [(32, length) for length in (10, 20, 30)] * 500
    assert exercise_2(cycling, 0.01, 0.002, 0.001) == "compiled", (
        "shapes that repeat are traced once each: count the distinct ones"
    )
    assert exercise_2([], 0.01, 0.002, 0.001) == "eager", "no calls at all: a tie"


def check_3(exercise_3):
    answers = exercise_3()
    assert isinstance(answers, dict), "return a dict: situation -> 'eager' or 'compiled'"
    missing = [s for s in SITUATIONS if s not in answers]
    assert not missing, f"no answer for {missing[0]!r}"
    assert set(answers.values()) <= {"eager", "compiled"}, "answer 'eager' or 'compiled'"
    wrong = [
        situation
        for situation, digest in zip(SITUATIONS, _DIGESTS)
        if hashlib.sha256(f"{situation}={answers[situation]}".encode()).hexdigest()[:12] != digest
    ]
    assert not wrong, (
        f"{len(wrong)} answer(s) to reconsider, first: {wrong[0]!r} (the guide's table links "
        "to the lesson that measured it)"
    )
