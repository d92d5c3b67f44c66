"""Tests of course_utils.gradient_check, the yardstick every backward pass is measured with.

Hundreds of tests end in `rel_error(analytic, numerical) < tol`; if rel_error or a numerical
gradient were wrong, all of them could pass while proving nothing. So each helper is checked
here against values worked out by hand: relative errors of small vectors, and gradients of
functions whose derivatives are known in closed form (quadratics, linear maps, cubes).

Tolerances. For a quadratic or a linear map the centred difference has no truncation error
at all, so what is left is roundoff: about 1e-16 * |f| / h, i.e. ~1e-10 absolute for
|f| ~ 10 and h = 1e-5. The gradients below have entries of size ~1, so 1e-8 relative leaves
a margin of 100 and still fails on any wrong formula (those give errors of 1e-1 or more).
"""
import numpy as np
import pytest

from course_utils.gradient_check import (_all_indices, eval_numerical_gradient,
                                         eval_numerical_gradient_array, grad_check_sparse,
                                         rel_error)

ROUNDOFF_TOL = 1e-8  # exact-in-exact-arithmetic differences: only roundoff ~1e-10 remains


def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------
# rel_error
# --------------------------------------------------------------------------------------
def test_rel_error_of_identical_arrays_is_zero():
    x = rng().standard_normal((3, 4))
    assert rel_error(x, x.copy()) == 0.0


def test_rel_error_is_difference_over_sum_of_magnitudes():
    # |1 - 3| / (|1| + |3|) = 0.5, and |-2 - 2| / (2 + 2) = 1: opposite signs give 1
    assert rel_error(np.array([1.0]), np.array([3.0])) == 0.5
    assert rel_error(np.array([-2.0]), np.array([2.0])) == 1.0
    assert rel_error(np.array([3.0]), np.array([1.0])) == 0.5  # symmetric in its arguments


def test_rel_error_reports_the_worst_entry_not_the_best_or_the_mean():
    # entrywise errors 0, 0.5 and 0.1 (|1 - 1.2222...| / 2.2222... = 0.1): the worst is 0.5
    x = np.array([1.0, 1.0, 1.0])
    y = np.array([1.0, 3.0, 11.0 / 9.0])
    assert rel_error(x, y) == pytest.approx(0.5, abs=1e-15)  # one rounding step of 0.5
    # one bad entry among many good ones must still show
    good = np.ones(1000)
    bad = good.copy()
    bad[617] = 2.0
    assert rel_error(good, bad) == pytest.approx(1 / 3, abs=1e-15)  # |1 - 2| / 3


def test_rel_error_floors_the_denominator_at_eps():
    # two tiny numbers: 1e-10 / max(1e-8, 1e-10 + 0) = 1e-2, not 1 (their relative error)
    assert rel_error(np.array([0.0]), np.array([1e-10])) == pytest.approx(1e-2, rel=1e-12)
    assert rel_error(np.array([0.0]), np.array([1e-10]), eps=1e-20) == pytest.approx(1.0)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0  # 0 / eps, no division by zero


def test_rel_error_returns_a_python_float_and_accepts_lists():
    value = rel_error([1.0, 2.0], [1.0, 2.5])
    assert type(value) is float
    assert value == pytest.approx(0.5 / 4.5, rel=1e-15)


# --------------------------------------------------------------------------------------
# eval_numerical_gradient: gradients of scalar functions
# --------------------------------------------------------------------------------------
def test_numerical_gradient_of_a_quadratic_is_ax_plus_b():
    # f(x) = 0.5 x^T A x + b^T x with A not symmetric: grad = 0.5 (A + A^T) x + b
    r = rng(1)
    A, b, x = r.standard_normal((4, 4)), r.standard_normal(4), r.standard_normal(4)

    def f(v):
        return 0.5 * v @ A @ v + b @ v

    expected = 0.5 * (A + A.T) @ x + b
    num = eval_numerical_gradient(f, x.copy(), verbose=False)
    assert num.shape == x.shape
    assert rel_error(num, expected) < ROUNDOFF_TOL


def test_numerical_gradient_of_a_hand_worked_function():
    # f(x, y) = x^2 y + 3y at (2, -1): df/dx = 2xy = -4, df/dy = x^2 + 3 = 7
    num = eval_numerical_gradient(lambda v: v[0] ** 2 * v[1] + 3 * v[1],
                                  np.array([2.0, -1.0]), verbose=False)
    assert np.abs(num - np.array([-4.0, 7.0])).max() < 1e-9  # quadratic in x: roundoff only


def test_numerical_gradient_uses_centred_differences():
    # For f = sum(x^3): ((x + h)^3 - (x - h)^3) / 2h = 3x^2 + h^2 exactly, while a forward
    # difference would give 3x^2 + 3xh + h^2. With h = 1e-3 the two differ by ~3e-3 x.
    h = 1e-3
    x = np.array([0.5, -1.5, 2.0])
    num = eval_numerical_gradient(lambda v: np.sum(v ** 3), x.copy(), verbose=False, h=h)
    # roundoff: 1e-16 * |f| (~12) / h ~ 1e-12; 1e-9 leaves a wide margin
    assert np.abs(num - (3 * x ** 2 + h ** 2)).max() < 1e-9


def test_numerical_gradient_covers_every_entry_of_a_matrix_in_place():
    # f(X) = sum(W * X) has gradient W; every entry, in its own place, must be filled
    W = np.arange(1.0, 7.0).reshape(2, 3) * np.array([1, -1, 1])
    X = rng(2).standard_normal((2, 3))
    before = X.copy()
    num = eval_numerical_gradient(lambda v: np.sum(W * v), X, verbose=False)
    assert rel_error(num, W) < ROUNDOFF_TOL
    assert np.array_equal(X, before)  # every perturbation was undone


def test_numerical_gradient_prints_each_entry_when_verbose(capsys):
    eval_numerical_gradient(lambda v: np.sum(v ** 2), np.array([1.0, 2.0]), verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("(0,)") and lines[1].startswith("(1,)")


# --------------------------------------------------------------------------------------
# eval_numerical_gradient_array: gradients of array-valued functions, pulled back by df
# --------------------------------------------------------------------------------------
def test_numerical_gradient_array_of_a_linear_map_is_its_transpose_times_df():
    # f(x) = M x: the gradient of sum(f(x) * df) is M^T df
    r = rng(3)
    M, x, df = r.standard_normal((2, 3)), r.standard_normal(3), r.standard_normal(2)
    num = eval_numerical_gradient_array(lambda v: M @ v, x.copy(), df)
    assert num.shape == (3,)
    assert rel_error(num, M.T @ df) < ROUNDOFF_TOL


def test_numerical_gradient_array_of_a_matrix_product():
    # f(X) = X W with X (2, 3), W (3, 4): d sum(f * df) / dX = df W^T
    r = rng(4)
    X, W, df = r.standard_normal((2, 3)), r.standard_normal((3, 4)), r.standard_normal((2, 4))
    before = X.copy()
    num = eval_numerical_gradient_array(lambda v: v @ W, X, df)
    assert rel_error(num, df @ W.T) < ROUNDOFF_TOL
    assert np.array_equal(X, before)


def test_numerical_gradient_array_of_an_elementwise_square():
    # f(x) = x^2 elementwise: gradient 2 x df, with df weighting each output
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    df = np.array([[1.0, 0.5], [-2.0, 0.0]])
    num = eval_numerical_gradient_array(lambda v: v ** 2, x.copy(), df)
    assert np.abs(num - np.array([[2.0, -2.0], [-2.0, 0.0]])).max() < 1e-9  # roundoff only


def test_numerical_gradient_array_copes_with_a_function_returning_its_input():
    # The identity returns the very array being perturbed: its values must be read at +h and
    # -h before the next perturbation overwrites them. Gradient: df.
    x = np.array([0.3, -0.7, 1.1])
    df = np.array([2.0, -1.0, 0.5])
    num = eval_numerical_gradient_array(lambda v: v, x.copy(), df)
    assert rel_error(num, df) < ROUNDOFF_TOL


# --------------------------------------------------------------------------------------
# grad_check_sparse and the index helper
# --------------------------------------------------------------------------------------
def test_grad_check_sparse_accepts_the_true_gradient_and_rejects_a_wrong_one():
    r = rng(5)
    A = r.standard_normal((3, 3))
    A = A + A.T
    x = r.standard_normal(3)

    def f(v):
        return 0.5 * v @ A @ v  # grad = A x (A symmetric)

    good = grad_check_sparse(f, x, A @ x, num_checks=6, verbose=False)
    assert len(good) == 6 and max(good) < ROUNDOFF_TOL
    # twice the true gradient: |g - 2g| / (|g| + |2g|) = 1/3 at every checked entry
    bad = grad_check_sparse(f, x, 2 * (A @ x), num_checks=6, verbose=False)
    assert bad == pytest.approx([1 / 3] * 6, abs=1e-8)  # 1e-10 roundoff over |g| ~ 1


def test_grad_check_sparse_finds_one_wrong_entry_when_it_checks_enough_entries():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    analytic = 2 * x
    analytic[2] = 0.0  # wrong here only: numerical 6, analytic 0, relative error 1
    errors = grad_check_sparse(lambda v: np.sum(v ** 2), x, analytic, num_checks=40,
                               verbose=False)
    assert max(errors) == pytest.approx(1.0)
    assert min(errors) < ROUNDOFF_TOL  # the other entries agree
    assert np.array_equal(x, [1.0, 2.0, 3.0, 4.0])  # perturbations undone


def test_grad_check_sparse_is_repeatable_and_prints_when_verbose(capsys):
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    wrong = np.arange(12.0).reshape(3, 4)  # gives a different error at every entry

    def f(v):
        return np.sum(v ** 2)

    first = grad_check_sparse(f, x, wrong, num_checks=5, seed=3, verbose=True)
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert grad_check_sparse(f, x, wrong, num_checks=5, seed=3, verbose=False) == first


@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 1, 3), (3, 0)])
def test_all_indices_lists_every_index_once_in_c_order(shape):
    assert list(_all_indices(shape)) == list(np.ndindex(*shape))
