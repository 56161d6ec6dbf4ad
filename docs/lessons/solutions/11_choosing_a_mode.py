"""Worked answers to the exercises of lesson 11 (docs/lessons/11_choosing_a_mode.py)."""


def exercise_1(compile_s, eager_s, compiled_s, calls):
    return "compiled" if compile_s + calls * compiled_s < calls * eager_s else "eager"


def exercise_2(shapes, trace_s, eager_s, compiled_s):
    compiled = len(set(shapes)) * trace_s + len(shapes) * compiled_s
    return "compiled" if compiled < len(shapes) * eager_s else "eager"


def exercise_3():
    return {
        "printing intermediate values while debugging a new model": "eager",
        "10,000 training steps of a small MLP on fixed-size batches": "compiled",
        "a GELU chain evaluated once per batch on 10 million elements, for a whole epoch": (
            "compiled"
        ),
        "a sentence model called once per sentence, each sentence a new length, no padding": (
            "eager"
        ),
        "a Python float learning rate baked into the step, changed at every step": "eager",
        "a gradient penalty (a gradient of a gradient) in every one of 5,000 steps": "compiled",
    }
