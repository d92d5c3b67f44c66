"""Assertions for test cells, written so that a submission cannot bend them.

A test cell runs in the student's kernel, after the student's code. Student code can rebind
names in the notebook (`np = fake`) or patch module attributes (`np.allclose = ...`), so these
checks compare values with plain Python floats obtained through `tolist()` (a method of the
array type, which Python code cannot patch) and never call numpy functions on the result.
Messages say what was checked and what differed, and never quote the hidden inputs' code.
"""
from __future__ import annotations

import math
import numbers


class CheckFailed(AssertionError):
    """A check in a test cell did not hold; the message is written for the student."""


def _plain(value):
    """Nested Python lists/floats from an array of any backend, a list or a number."""
    if hasattr(value, "get") and type(value).__module__.split(".")[0] == "cupy":
        value = value.get()
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value


def _shape(value):
    if isinstance(value, list):
        inner = {_shape(v) for v in value}
        if len(inner) > 1:
            return ("ragged",)
        return (len(value),) + (inner.pop() if inner else ())
    return ()


def _flat(value):
    if isinstance(value, list):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def assert_shape(actual, shape, what="the result"):
    got = _shape(_plain(actual))
    if got != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {got}.")


def assert_close(actual, expected, rtol=1e-7, atol=1e-9, what="the result"):
    """|actual - expected| <= atol + rtol * |expected| everywhere, shapes equal, no NaN.

    Default tolerances suit float64 arithmetic done in a different order than the reference
    (a few ulps of error); tests that compare float32 results pass looser ones explicitly.
    """
    a, e = _plain(actual), _plain(expected)
    if _shape(a) != _shape(e):
        raise CheckFailed(f"{what}: expected shape {_shape(e)}, got {_shape(a)}.")
    worst, count = 0.0, 0
    for x, y in zip(_flat(a), _flat(e)):
        if not isinstance(x, numbers.Number) or isinstance(x, bool) and not isinstance(y, bool):
            raise CheckFailed(f"{what}: expected numbers, got {type(x).__name__}.")
        x, y = complex(x), complex(y)
        if math.isnan(x.real) or math.isnan(x.imag):
            raise CheckFailed(f"{what}: the result contains NaN.")
        err = abs(x - y)
        if err > atol + rtol * abs(y):
            count += 1
            worst = max(worst, err)
    if count:
        raise CheckFailed(f"{what}: {count} value(s) differ from the expected ones "
                          f"(largest difference {worst:.3g}; tolerance rtol={rtol:g}, atol={atol:g}).")


def assert_equal(actual, expected, what="the result"):
    a, e = _plain(actual), _plain(expected)
    if a != e:
        raise CheckFailed(f"{what}: expected {e!r}, got {a!r}." if len(repr(e)) < 200
                          else f"{what}: the values differ from the expected ones.")


def assert_true(condition, message):
    """Fail with `message` unless `condition` is True (a 0-d array of a boolean is accepted)."""
    if hasattr(condition, "item"):
        condition = condition.item()
    if condition is not True:
        raise CheckFailed(message)


def numerical_gradient(f, x, df=None, h=1e-5):
    """Centered-difference gradient of sum(f(x) * df) (or of the scalar f(x)) at x.

    Written apart from course_utils.gradient_check (which students import and could patch),
    using only array indexing and Python floats.
    """
    import itertools

    grad = x.copy() * 0.0
    for ix in itertools.product(*(range(n) for n in x.shape)):
        old = float(x[ix])
        x[ix] = old + h
        plus = _plain(f(x))
        x[ix] = old - h
        minus = _plain(f(x))
        x[ix] = old
        if df is None:
            grad[ix] = (float(plus) - float(minus)) / (2 * h)
        else:
            weights = list(_flat(_plain(df)))
            diff = [(p - m) for p, m in zip(_flat(plus), _flat(minus))]
            grad[ix] = sum(d * w for d, w in zip(diff, weights)) / (2 * h)
    return grad
