"""Update rules against the same rules written out by hand, one scalar at a time, in plain
Python; plus learning-rate schedules against their formulas.

Tolerance: reference and library do the same float64 arithmetic in a different order
(elementwise Python floats vs numpy arrays), so they agree to a few ulps; 1e-12 relative
leaves room for that and nothing else.
"""
import math

import numpy as np
import pytest

from course_utils import optim, schedules
from course_utils.gradient_check import rel_error

TOL = 1e-12  # see module docstring

N_STEPS = 4


def weights():
    return np.linspace(-0.4, 0.6, num=20).reshape(4, 5)


def gradient(step):
    """A different gradient at each step, so the state really matters."""
    return np.linspace(-0.6, 0.4, num=20).reshape(4, 5) * (1 + 0.5 * step) + 0.1 * step


def run_rule(rule, config):
    w = weights()
    for step in range(N_STEPS):
        w, config = rule(w, gradient(step), config)
    return w, config


def run_reference(update_scalar, state0):
    """Apply a scalar update rule to every entry of weights() for N_STEPS steps."""
    flat_w = weights().ravel().tolist()
    out, states = [], []
    for idx, w in enumerate(flat_w):
        state = dict(state0)
        for step in range(N_STEPS):
            g = gradient(step).ravel().tolist()[idx]
            w = update_scalar(w, g, state, step + 1)
        out.append(w)
        states.append(state)
    return np.array(out).reshape(4, 5), states


def test_sgd_matches_hand_written_steps():
    lr = 0.05

    def ref(w, g, s, t):
        return w - lr * g
    w, _ = run_rule(optim.sgd, {"learning_rate": lr})
    expected, _ = run_reference(ref, {})
    assert rel_error(w, expected) < TOL


def test_sgd_momentum_matches_hand_written_steps():
    lr, mu = 0.05, 0.8

    def ref(w, g, s, t):
        s["v"] = mu * s["v"] - lr * g
        return w + s["v"]
    w, config = run_rule(optim.sgd_momentum, {"learning_rate": lr, "momentum": mu})
    expected, states = run_reference(ref, {"v": 0.0})
    assert rel_error(w, expected) < TOL
    assert rel_error(config["velocity"], np.array([s["v"] for s in states]).reshape(4, 5)) < TOL


def test_nesterov_matches_lookahead_form():
    lr, mu = 0.05, 0.9

    def ref(w, g, s, t):
        v_prev = s["v"]
        s["v"] = mu * s["v"] - lr * g
        return w - mu * v_prev + (1 + mu) * s["v"]
    w, _ = run_rule(optim.nesterov, {"learning_rate": lr, "momentum": mu})
    expected, _ = run_reference(ref, {"v": 0.0})
    assert rel_error(w, expected) < TOL


def test_adagrad_matches_hand_written_steps():
    lr, eps = 0.1, 1e-8

    def ref(w, g, s, t):
        s["cache"] += g * g
        return w - lr * g / (math.sqrt(s["cache"]) + eps)
    w, _ = run_rule(optim.adagrad, {"learning_rate": lr})
    expected, _ = run_reference(ref, {"cache": 0.0})
    assert rel_error(w, expected) < TOL


def test_rmsprop_matches_hand_written_steps():
    lr, rho, eps = 0.01, 0.9, 1e-8

    def ref(w, g, s, t):
        s["cache"] = rho * s["cache"] + (1 - rho) * g * g
        return w - lr * g / (math.sqrt(s["cache"]) + eps)
    w, config = run_rule(optim.rmsprop, {"learning_rate": lr, "decay_rate": rho})
    expected, _ = run_reference(ref, {"cache": 0.0})
    assert rel_error(w, expected) < TOL
    assert config["epsilon"] == eps  # default filled in


def test_adam_matches_hand_written_steps_with_bias_correction():
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8

    def ref(w, g, s, t):
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1**t)
        v_hat = s["v"] / (1 - b2**t)
        return w - lr * m_hat / (math.sqrt(v_hat) + eps)
    w, config = run_rule(optim.adam, {"learning_rate": lr})
    expected, states = run_reference(ref, {"m": 0.0, "v": 0.0})
    assert rel_error(w, expected) < TOL
    assert config["t"] == N_STEPS
    assert rel_error(config["m"], np.array([s["m"] for s in states]).reshape(4, 5)) < TOL
    assert rel_error(config["v"], np.array([s["v"] for s in states]).reshape(4, 5)) < TOL


def test_adam_first_step_moves_every_weight_by_about_the_learning_rate():
    # With bias correction, m_hat = g and v_hat = g^2 at t = 1, so the step is lr * sign(g).
    w = weights()
    next_w, _ = optim.adam(w, gradient(0), {"learning_rate": 1e-3})
    assert np.allclose(w - next_w, 1e-3 * np.sign(gradient(0)), rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_every_rule_fills_defaults_keeps_input_and_dtype(name):
    rule = optim.UPDATE_RULES[name]
    w = weights().astype(np.float32)
    w_before = w.copy()
    next_w, config = rule(w, gradient(0))  # float64 gradient on a float32 parameter
    assert "learning_rate" in config
    assert next_w.dtype == np.float32 and next_w.shape == w.shape
    assert np.array_equal(w, w_before)  # pure: the input is not modified
    assert not np.array_equal(next_w, w)


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_every_rule_minimises_a_quadratic(name):
    rule = optim.UPDATE_RULES[name]
    w = weights()
    config = {"learning_rate": 0.05}
    for _ in range(300):
        w, config = rule(w, w.copy(), config)  # f(w) = 0.5 |w|^2, grad = w
    assert np.abs(w).max() < 0.5 * np.abs(weights()).max()


def test_rules_reject_bad_input():
    w = weights()
    with pytest.raises(ValueError, match=r"adam: dw must have the shape of w.*\(4, 5\).*\(5, 4\)"):
        optim.adam(w, w.T)
    with pytest.raises(ValueError, match="sgd: w and dw must be floating-point"):
        optim.sgd(np.arange(4), np.ones(4))
    with pytest.raises(ValueError, match=r"sgd_momentum: config\['velocity'\] has shape"):
        optim.sgd_momentum(w, w, {"velocity": np.zeros(3)})


def test_get_update_rule_lists_valid_names():
    assert optim.get_update_rule("adam") is optim.adam
    with pytest.raises(ValueError, match="unknown update rule 'adamw'.*'rmsprop'"):
        optim.get_update_rule("adamw")


# ---------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------

def test_step_decay_drops_every_few_epochs():
    got = [schedules.step_decay(0.1, e, drop=0.5, every=3) for e in range(7)]
    expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    assert all(abs(a - b) < 1e-15 for a, b in zip(got, expected, strict=True))


def test_exponential_and_inverse_time_decay_follow_their_formulas():
    for t in [0, 1, 2.5, 10]:
        assert abs(schedules.exponential_decay(2.0, t, 0.3) - 2.0 * math.exp(-0.3 * t)) < 1e-15
        assert abs(schedules.inverse_time_decay(2.0, t, 0.3) - 2.0 / (1 + 0.3 * t)) < 1e-15
    assert schedules.inverse_time_decay(1.0, 10, 1.0) == 1 / 11


def test_linear_decay_hits_endpoints_and_stays():
    assert schedules.linear_decay(1.0, 0, 10, lr_end=0.1) == 1.0
    assert abs(schedules.linear_decay(1.0, 5, 10, lr_end=0.1) - 0.55) < 1e-15
    assert abs(schedules.linear_decay(1.0, 10, 10, lr_end=0.1) - 0.1) < 1e-15
    assert abs(schedules.linear_decay(1.0, 50, 10, lr_end=0.1) - 0.1) < 1e-15


def test_schedules_reject_bad_arguments():
    with pytest.raises(ValueError, match="step_decay: every"):
        schedules.step_decay(0.1, 1, 0.5, 0)
    with pytest.raises(ValueError, match="linear_decay: t_end"):
        schedules.linear_decay(0.1, 1, 0)
    with pytest.raises(ValueError, match="exponential_decay: t must be >= 0"):
        schedules.exponential_decay(0.1, -1, 0.5)
