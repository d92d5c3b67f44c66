"""First-order update rules.

Every rule has the same shape:

    next_w, config = rule(w, dw, config=None)

w: the current parameter array (any shape), dw: the gradient of the loss with respect to w
(same shape). config: a dict of hyperparameters (learning rate, ...) and of the rule's state
(velocity, moving averages, step count). Missing hyperparameters are filled in with
`config.setdefault`, so the dict you pass gains the defaults, and the state it carries is
what makes momentum or Adam remember previous steps: give the *returned* config back on the
next call (the Solver keeps one config per parameter).

w itself is never modified: next_w is a new array, in w's dtype, on w's backend (numpy or
cupy), so a float32 model stays float32 even if a gradient arrives in float64.
"""
from __future__ import annotations

import numpy

from .backend import array_module


def _check(rule, w, dw, config):
    if not numpy.issubdtype(w.dtype, numpy.floating) or \
            not numpy.issubdtype(dw.dtype, numpy.floating):
        raise ValueError(f"{rule}: w and dw must be floating-point arrays, got dtypes "
                         f"{w.dtype} and {dw.dtype}.")
    if w.shape != dw.shape:
        raise ValueError(f"{rule}: dw must have the shape of w; got w {w.shape}, dw {dw.shape}.")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"{rule}: config must be a dict (or None), got {type(config).__name__}.")
    return config


def _state(rule, config, key, w):
    """The state array config[key], created as zeros like w on first use."""
    xp = array_module(w)
    value = config.setdefault(key, xp.zeros_like(w))
    if value.shape != w.shape:
        raise ValueError(f"{rule}: config[{key!r}] has shape {value.shape} but w has shape "
                         f"{w.shape}; was this config made for another parameter?")
    return value


def _like(a, w):
    return a.astype(w.dtype, copy=False)


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: w <- w - learning_rate * dw.

    config: learning_rate (default 1e-2).
    """
    config = _check("sgd", w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    return _like(w - config["learning_rate"] * dw, w), config


# student-writes: assignment1/two_layer_net, assignment2/fully_connected_nets
def sgd_momentum(w, dw, config=None):
    """SGD with momentum: a velocity v accumulates a decaying sum of past gradients.

        v <- momentum * v - learning_rate * dw
        w <- w + v

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w; the state).
    """
    config = _check("sgd_momentum", w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = _state("sgd_momentum", config, "velocity", w)
    v = _like(config["momentum"] * v - config["learning_rate"] * dw, w)
    config["velocity"] = v
    return _like(w + v, w), config


# student-writes: assignment2/fully_connected_nets
def nesterov(w, dw, config=None):
    """Nesterov momentum in the "look-ahead" form of the lecture notes.

    Nesterov evaluates the gradient at the look-ahead point w + momentum * v. Renaming the
    stored parameter to be that look-ahead point lets the rule use the gradient at the
    *current* parameter (which is what the caller has):

        v_prev = v
        v <- momentum * v - learning_rate * dw
        w <- w - momentum * v_prev + (1 + momentum) * v

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w; the state).
    """
    config = _check("nesterov", w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    mu = config["momentum"]
    v_prev = _state("nesterov", config, "velocity", w)
    v = _like(mu * v_prev - config["learning_rate"] * dw, w)
    config["velocity"] = v
    return _like(w - mu * v_prev + (1 + mu) * v, w), config


def adagrad(w, dw, config=None):
    """Adagrad (Duchi et al. 2011): per-coordinate step sizes shrink with the sum of all
    squared gradients seen so far.

        cache <- cache + dw**2
        w <- w - learning_rate * dw / (sqrt(cache) + epsilon)

    config: learning_rate (1e-2), epsilon (1e-8), cache (zeros like w; the state).
    """
    config = _check("adagrad", w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("epsilon", 1e-8)
    xp = array_module(w, dw)
    cache = _like(_state("adagrad", config, "cache", w) + dw * dw, w)
    config["cache"] = cache
    step = config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    return _like(w - step, w), config


# student-writes: assignment2/fully_connected_nets
def rmsprop(w, dw, config=None):
    """RMSProp (Tieleman & Hinton 2012): like Adagrad but with a leaky average of squared
    gradients, so step sizes stop shrinking forever.

        cache <- decay_rate * cache + (1 - decay_rate) * dw**2
        w <- w - learning_rate * dw / (sqrt(cache) + epsilon)

    config: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8), cache (the state).
    """
    config = _check("rmsprop", w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    xp = array_module(w, dw)
    rho = config["decay_rate"]
    cache = _like(rho * _state("rmsprop", config, "cache", w) + (1 - rho) * dw * dw, w)
    config["cache"] = cache
    step = config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    return _like(w - step, w), config


# student-writes: assignment2/fully_connected_nets
def adam(w, dw, config=None):
    """Adam (Kingma & Ba 2015): momentum on the gradient plus RMSProp-style scaling, with
    bias correction because both moving averages start at zero.

        t <- t + 1
        m <- beta1 * m + (1 - beta1) * dw
        v <- beta2 * v + (1 - beta2) * dw**2
        m_hat = m / (1 - beta1**t),  v_hat = v / (1 - beta2**t)
        w <- w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8); state m, v
    (zeros like w) and t (0, the number of steps taken so far).
    """
    config = _check("adam", w, dw, config)
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("t", 0)
    xp = array_module(w, dw)
    b1, b2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    m = _like(b1 * _state("adam", config, "m", w) + (1 - b1) * dw, w)
    v = _like(b2 * _state("adam", config, "v", w) + (1 - b2) * dw * dw, w)
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    next_w = w - config["learning_rate"] * m_hat / (xp.sqrt(v_hat) + config["epsilon"])
    config.update(m=m, v=v, t=t)
    return _like(next_w, w), config


UPDATE_RULES = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
}
"""Every rule by name, e.g. for `Solver(update_rule="adam")`."""


def get_update_rule(name):
    """The update rule called `name`; ValueError listing the valid names otherwise."""
    try:
        return UPDATE_RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"get_update_rule: unknown update rule {name!r}; valid names are "
                         f"{sorted(UPDATE_RULES)}.") from None
