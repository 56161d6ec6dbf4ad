"""Worked answers to the exercises of lesson 1."""

import symbolic as S


def exercise_1():
    a, b, c = S.placeholder(name="a"), S.placeholder(name="b"), S.placeholder(name="c")
    return S.compile((a**2 + b**2 + c**2) ** 0.5, inputs=[a, b, c])


def exercise_2(a, b):
    return (a**2 + b**2) ** 0.5


def exercise_3(shape_a, shape_b):
    a, b = S.placeholder(shape_a), S.placeholder(shape_b)
    return ((a**2 + b**2) ** 0.5).shape
