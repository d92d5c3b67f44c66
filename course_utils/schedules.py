"""Learning-rate schedules: pure functions from a time (epoch or iteration) to a learning rate.

They hold no state, so a schedule can be plotted before training and reused anywhere. To drive
a Solver with one, pass the multiplier form, e.g.

    Solver(..., optim_config={"learning_rate": 1e-3},
           lr_schedule=lambda epoch: step_decay(1.0, epoch, drop=0.5, every=5))

which scales the base learning rate by the schedule evaluated with lr0 = 1.
"""
from __future__ import annotations

import math


def _nonnegative(fn, name, value):
    if value < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {value}.")


# student-writes: extras/training_craft
def step_decay(lr0, epoch, drop, every):
    """Multiply the rate by `drop` every `every` epochs: lr0 * drop ** floor(epoch / every).

    E.g. drop=0.1, every=30 is the classic ImageNet schedule.
    """
    _nonnegative("step_decay", "epoch", epoch)
    if every <= 0:
        raise ValueError(f"step_decay: every must be a positive number of epochs, got {every}.")
    return lr0 * drop ** (epoch // every)


# student-writes: extras/training_craft
def exponential_decay(lr0, t, k):
    """Smooth exponential decay: lr0 * exp(-k t)."""
    _nonnegative("exponential_decay", "t", t)
    return lr0 * math.exp(-k * t)


# student-writes: extras/training_craft
def inverse_time_decay(lr0, t, k):
    """The 1/t schedule: lr0 / (1 + k t). Its sum diverges while its squares' sum converges,
    the classic condition for SGD to converge."""
    _nonnegative("inverse_time_decay", "t", t)
    _nonnegative("inverse_time_decay", "k", k)
    return lr0 / (1 + k * t)


# student-writes: extras/training_craft
def linear_decay(lr0, t, t_end, lr_end=0.0):
    """Straight line from lr0 at t = 0 to lr_end at t = t_end, then constant lr_end."""
    _nonnegative("linear_decay", "t", t)
    if t_end <= 0:
        raise ValueError(f"linear_decay: t_end must be > 0, got {t_end}.")
    frac = min(t, t_end) / t_end
    return lr0 + (lr_end - lr0) * frac
