"""Tests of the reference kNN classifier in course_utils.classifiers.k_nearest_neighbor.

The three distance versions are checked against a brute-force double loop written here with
math.dist on Python floats (no numpy arithmetic at all), the vote against hand-made cases
whose answer is known, and the error paths against their messages.
"""
import math

import numpy as np
import pytest

from course_utils.classifiers import KNearestNeighbor

VERSIONS = pytest.mark.parametrize("num_loops", [2, 1, 0], ids=["two_loops", "one_loop",
                                                                "no_loops"])


def brute_force_distances(X_test, X_train):
    """L2 distances with Python's math.dist: a formulation that shares no code with numpy's."""
    return np.array([[math.dist(a, b) for b in X_train.tolist()] for a in X_test.tolist()])


def distances(knn, X, num_loops):
    return {0: knn.compute_distances_no_loops, 1: knn.compute_distances_one_loop,
            2: knn.compute_distances_two_loops}[num_loops](X)


def problem(num_train=13, num_test=6, dim=5, num_classes=4, seed=0, scale=1.0):
    r = np.random.default_rng(seed)
    return (scale * r.standard_normal((num_train, dim)), r.integers(0, num_classes, num_train),
            scale * r.standard_normal((num_test, dim)))


@VERSIONS
@pytest.mark.parametrize("shape", [(13, 6, 5), (1, 1, 1), (7, 20, 3), (40, 3, 64)])
def test_distances_match_a_brute_force_loop(num_loops, shape):
    num_train, num_test, dim = shape
    X_train, y_train, X_test = problem(num_train, num_test, dim, seed=sum(shape))
    knn = KNearestNeighbor().train(X_train, y_train)
    got = distances(knn, X_test, num_loops)
    assert got.shape == (num_test, num_train)
    # float64 on O(1) values: the expansion ||a||^2 - 2ab + ||b||^2 loses a few ulps of
    # the squared norms (~1e-15 * 64), far below 1e-9 after the square root.
    np.testing.assert_allclose(got, brute_force_distances(X_test, X_train), rtol=1e-9, atol=1e-9)


@VERSIONS
def test_distances_on_pixel_scale_float32_images(num_loops):
    # CIFAR-like values (0..255, D = 3072) in float32: the no-loop expansion subtracts
    # numbers of size ~1e8, so float32 rounding (~1e-7 relative) leaves ~10 in the squared
    # distance; distances themselves are ~5e3, hence rtol 1e-3 (the loops are far closer).
    r = np.random.default_rng(1)
    X_train = r.integers(0, 256, (9, 3072)).astype(np.float32)
    X_test = r.integers(0, 256, (4, 3072)).astype(np.float32)
    knn = KNearestNeighbor().train(X_train, np.arange(9))
    got = distances(knn, X_test, num_loops)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, brute_force_distances(X_test, X_train), rtol=1e-3)


@VERSIONS
def test_uint8_images_do_not_wrap_around(num_loops):
    # 0 - 255 in uint8 is 1, not -255: the distances must be computed in a float type.
    X_train = np.array([[0, 0], [255, 255]], dtype=np.uint8)
    X_test = np.array([[255, 0]], dtype=np.uint8)
    knn = KNearestNeighbor().train(X_train, np.array([0, 1]))
    np.testing.assert_allclose(distances(knn, X_test, num_loops), [[255.0, 255.0]])


def test_no_loop_distance_of_a_row_to_itself_is_exactly_zero():
    # Rounding makes ||a||^2 - 2 a.a + ||a||^2 slightly negative for some rows; without the
    # clamp at 0, sqrt would give NaN (and a RuntimeWarning).
    X = np.random.default_rng(2).standard_normal((50, 30)) * 1e3 + 1e4
    knn = KNearestNeighbor().train(X, np.zeros(50, dtype=int))
    with np.errstate(invalid="raise"):
        d = knn.compute_distances_no_loops(X)
    assert not np.isnan(d).any()
    assert np.all(d >= 0)
    # The diagonal holds a square root of pure rounding error: sqrt(eps * ||a||^2) ~ 1e-3 here,
    # tiny next to the distances between different rows (~1e4).
    assert np.all(np.diag(d) < 1e-2 * np.median(d))


def test_k1_on_the_training_data_returns_the_training_labels():
    X_train, y_train, _ = problem(num_train=30, num_classes=5, seed=3)
    knn = KNearestNeighbor().train(X_train, y_train)
    for num_loops in (0, 1, 2):
        np.testing.assert_array_equal(knn.predict(X_train, k=1, num_loops=num_loops), y_train)


def test_vote_takes_the_majority_of_the_k_nearest():
    # Training points on a line; the test point at 0 has neighbours 1, 2, 3, 4, 10 in order.
    X_train = np.array([[1.0], [2.0], [3.0], [4.0], [10.0]])
    y_train = np.array([2, 0, 0, 1, 1])
    knn = KNearestNeighbor().train(X_train, y_train)
    X_test = np.array([[0.0]])
    assert knn.predict(X_test, k=1).tolist() == [2]
    assert knn.predict(X_test, k=3).tolist() == [0]  # labels 2, 0, 0
    assert knn.predict(X_test, k=5).tolist() == [0]  # 2, 0, 0, 1, 1: tie 0 vs 1 -> 0


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_a_tied_vote_goes_to_the_smaller_label_whatever_the_distance_order(order):
    # Label 7 is nearer than label 3, but with k=2 each has one vote: 3 wins.
    y_pair = np.array([7, 3])[order]
    X_pair = np.array([[1.0], [2.0]])[order]
    knn = KNearestNeighbor().train(X_pair, y_pair)
    assert knn.predict(np.array([[0.0]]), k=2).tolist() == [3]


def test_three_way_tie_and_a_larger_majority():
    dists = np.array([[1.0, 2.0, 3.0, 9.0, 9.0],    # k=3: labels 4, 2, 5 -> 2
                      [5.0, 1.0, 9.0, 2.0, 3.0]])   # k=3: labels 2, 2, 2 -> 2
    y_train = np.array([4, 2, 5, 2, 2])
    knn = KNearestNeighbor().train(np.zeros((5, 1)), y_train)
    assert knn.predict_labels(dists, k=3).tolist() == [2, 2]
    assert knn.predict_labels(dists, k=1).tolist() == [4, 2]


def test_predictions_are_int64_labels_from_the_training_set():
    X_train, y_train, X_test = problem(num_train=25, num_test=11, num_classes=6, seed=4)
    knn = KNearestNeighbor().train(X_train, y_train)
    pred = knn.predict(X_test, k=4)
    assert pred.dtype == np.int64 and pred.shape == (11,)
    assert set(pred.tolist()) <= set(y_train.tolist())


def test_predict_labels_matches_a_counting_loop_on_random_data():
    X_train, y_train, X_test = problem(num_train=60, num_test=40, dim=3, num_classes=5, seed=5)
    knn = KNearestNeighbor().train(X_train, y_train)
    dists = brute_force_distances(X_test, X_train)
    for k in (1, 2, 4, 7, 60):
        expected = []
        for row in dists.tolist():
            nearest = sorted(range(len(row)), key=lambda j: row[j])[:k]
            votes = [0] * 5
            for j in nearest:
                votes[int(y_train[j])] += 1
            expected.append(votes.index(max(votes)))  # index() finds the smallest tied label
        assert knn.predict_labels(dists, k=k).tolist() == expected, f"k={k}"


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_refused(k):
    knn = KNearestNeighbor().train(np.zeros((3, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="at least 1"):
        knn.predict(np.zeros((1, 2)), k=k)


def test_k_larger_than_the_training_set_is_refused():
    knn = KNearestNeighbor().train(np.zeros((3, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="larger than the training set"):
        knn.predict_labels(np.zeros((1, 3)), k=4)


@pytest.mark.parametrize("k", [2.0, True, "3"])
def test_k_must_be_an_integer(k):
    knn = KNearestNeighbor().train(np.zeros((3, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="integer"):
        knn.predict(np.zeros((1, 2)), k=k)


def test_numpy_integer_k_is_accepted():
    knn = KNearestNeighbor().train(np.array([[0.0], [1.0], [5.0]]), np.array([0, 1, 1]))
    assert knn.predict(np.array([[0.2]]), k=np.int64(3)).tolist() == [1]


@pytest.mark.parametrize("X, y, match", [
    (np.zeros((4, 2, 2)), np.zeros(4, dtype=int), "2-D"),
    (np.zeros((4, 3)), np.zeros(5, dtype=int), r"shape \(4,\)"),
    (np.zeros((4, 3)), np.zeros((4, 1), dtype=int), r"shape \(4,\)"),
    (np.zeros((4, 3)), np.zeros(4), "integer"),
    (np.zeros((4, 3)), np.array([0, -1, 0, 0]), "non-negative"),
    (np.zeros((0, 3)), np.zeros(0, dtype=int), "empty"),
])
def test_train_refuses_bad_shapes_and_labels(X, y, match):
    with pytest.raises(ValueError, match=match):
        KNearestNeighbor().train(X, y)


@VERSIONS
@pytest.mark.parametrize("X_test", [np.zeros((2, 4)), np.zeros(3), np.zeros((2, 3, 1))],
                         ids=["wrong_dim", "1d", "3d"])
def test_test_rows_must_match_the_training_width(num_loops, X_test):
    knn = KNearestNeighbor().train(np.zeros((5, 3)), np.arange(5))
    with pytest.raises(ValueError, match=r"shape \(num_test, 3\)"):
        distances(knn, X_test, num_loops)


def test_predict_labels_refuses_a_distance_matrix_of_the_wrong_width():
    knn = KNearestNeighbor().train(np.zeros((5, 3)), np.arange(5))
    with pytest.raises(ValueError, match=r"\(num_test, 5\)"):
        knn.predict_labels(np.zeros((2, 4)), k=1)


def test_predict_refuses_an_unknown_num_loops():
    knn = KNearestNeighbor().train(np.zeros((5, 3)), np.arange(5))
    with pytest.raises(ValueError, match="num_loops"):
        knn.predict(np.zeros((2, 3)), num_loops=3)


def test_using_an_untrained_classifier_says_to_train_first():
    with pytest.raises(RuntimeError, match="train"):
        KNearestNeighbor().compute_distances_no_loops(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="train"):
        KNearestNeighbor().predict_labels(np.zeros((2, 3)), k=1)


def test_equally_distant_neighbours_are_taken_in_training_order():
    # 40 training rows all at distance 1; k=1 must pick row 0 and k=3 rows 0..2, whatever
    # the sort algorithm would otherwise do with equal keys.
    dists = np.ones((3, 40))
    dists[1, 30:] = 0.5  # row 1: rows 30..39 are nearer, the first of them is row 30
    y_train = np.arange(40)[::-1].copy()  # label 39 - index
    knn = KNearestNeighbor().train(np.zeros((40, 1)), y_train)
    assert knn.predict_labels(dists, k=1).tolist() == [39, 9, 39]
    assert knn.predict_labels(dists, k=3).tolist() == [37, 7, 37]  # 3-way ties: smallest
