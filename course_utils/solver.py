"""The training loop: minibatch SGD (or any rule from `optim`) for a classification model.

A model is anything with
    model.params        a dict name -> parameter array
    model.loss(X, y)    (loss, grads) with grads[name] shaped like params[name], when y is
                        given; class scores (N, C) when y is None (test-time forward pass)

Usage:

    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    num_epochs=10, batch_size=100, seed=0)
    solver.train()
    solver.plot_history()

data holds X_train, y_train, X_val, y_val as numpy (or backend) arrays. Each minibatch is
moved to the active backend with `backend.asarray`, so the data can stay on the host while
the model lives on the GPU. After train() the model holds the parameters that scored the best
validation accuracy.
"""
from __future__ import annotations

import pickle
import time

from . import optim
from .backend import array_module, asarray, default_rng, to_float, to_numpy

_DEFAULTS = dict(
    update_rule="sgd",
    optim_config=None,
    lr_decay=1.0,
    lr_schedule=None,
    augment=None,
    batch_size=100,
    num_epochs=10,
    num_train_samples=1000,
    num_val_samples=None,
    checkpoint_name=None,
    print_every=10,
    verbose=True,
    progress=None,
    seed=None,
    time_budget=None,
)


class Solver:
    """Trains `model` on `data`; records loss and accuracy histories.

    Keyword arguments (all optional):
        update_rule: a name from optim.UPDATE_RULES ('sgd', 'adam', ...) or a callable with
            the same signature, next_w, config = rule(w, dw, config).
        optim_config: hyperparameters for the rule, e.g. {'learning_rate': 1e-3}. Each
            parameter gets its own copy, because the rule keeps per-parameter state in it.
        lr_decay: multiply every learning rate by this after each epoch (default 1: none).
        lr_schedule: alternative to lr_decay, a callable epoch -> multiplier of the base
            learning rate optim_config['learning_rate'] (see course_utils.schedules).
        augment: None, or a function (X_batch, rng) -> X_batch applied to every training
            minibatch (never to accuracy checks), e.g. course_utils.augment.random_flip;
            rng is the solver's seeded numpy Generator.
        batch_size: examples per minibatch (default 100).
        num_epochs: passes over the training set (default 10).
        num_train_samples: training examples used to measure train accuracy after each epoch
            (default 1000; None for all).
        num_val_samples: validation examples used for val accuracy (default None: all).
        checkpoint_name: if given, a pickle is written to checkpoint_name + '_epoch_%d.pkl'
            after every epoch.
        print_every: print the loss every this many iterations when verbose.
        verbose: print progress (default True).
        progress: show a tqdm progress bar over iterations (default: same as verbose).
        seed: seed of the numpy generator that samples minibatches and accuracy subsets,
            so a run can be repeated exactly.
        time_budget: None, or seconds of training after which train() stops at the end of
            the current step, measures accuracy and keeps the best model so far. An
            experiment that runs on a student's own layers then costs its own time, however
            slow those layers are, not the rest of the notebook's. `stopped_early` says
            whether it happened.
    """

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"Solver: unrecognized arguments {unknown}; valid ones are "
                             f"{sorted(_DEFAULTS)}.")
        opts = {**_DEFAULTS, **kwargs}
        if not isinstance(getattr(model, "params", None), dict) or \
                not callable(getattr(model, "loss", None)):
            raise ValueError("Solver: model needs a dict `params` and a method `loss(X, y=None)`.")
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"Solver: data is missing {missing}; it needs X_train, y_train, "
                             f"X_val and y_val.")
        for split in ("train", "val"):
            X, y = data[f"X_{split}"], data[f"y_{split}"]
            if len(X) != len(y) or len(X) == 0:
                raise ValueError(f"Solver: X_{split} (shape {X.shape}) and y_{split} (shape "
                                 f"{y.shape}) must hold the same, nonzero number of examples.")

        self.model = model
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]

        rule = opts["update_rule"]
        self.update_rule = rule if callable(rule) else optim.get_update_rule(rule)
        self.optim_config = dict(opts["optim_config"] or {})
        self.lr_decay = opts["lr_decay"]
        self.lr_schedule = opts["lr_schedule"]
        if self.lr_schedule is not None:
            if not callable(self.lr_schedule):
                raise ValueError("Solver: lr_schedule must be a callable epoch -> multiplier.")
            if self.lr_decay != 1.0:
                raise ValueError("Solver: give lr_decay or lr_schedule, not both.")
            if "learning_rate" not in self.optim_config:
                raise ValueError("Solver: lr_schedule scales optim_config['learning_rate'], "
                                 "so optim_config must contain one.")
        self.augment = opts["augment"]
        if self.augment is not None and not callable(self.augment):
            raise ValueError("Solver: augment must be None or a function (X_batch, rng) -> "
                             "X_batch.")
        self.batch_size = int(opts["batch_size"])
        self.num_epochs = int(opts["num_epochs"])
        if self.batch_size < 1 or self.num_epochs < 1:
            raise ValueError(f"Solver: batch_size and num_epochs must be >= 1, got "
                             f"{self.batch_size} and {self.num_epochs}.")
        self.num_train_samples = opts["num_train_samples"]
        self.num_val_samples = opts["num_val_samples"]
        self.checkpoint_name = opts["checkpoint_name"]
        self.print_every = max(1, int(opts["print_every"]))
        self.verbose = bool(opts["verbose"])
        self.progress = self.verbose if opts["progress"] is None else bool(opts["progress"])
        self.seed = opts["seed"]
        self.time_budget = opts["time_budget"]
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"Solver: time_budget must be None or a positive number of "
                             f"seconds, got {self.time_budget!r}.")
        self._reset()

    def _reset(self):
        """Fresh bookkeeping: histories, best model so far, one optim config per parameter."""
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}
        self._rng = default_rng(self.seed)
        self._bar = None
        self.stopped_early = False

    # ------------------------------------------------------------------------------------
    @staticmethod
    def _rows(X, y, idx):
        """Rows idx of (X, y), still on the data's own backend. idx comes from the host
        generator; it is moved to the data's backend first when the data is on the GPU."""
        if array_module(X) is not array_module(idx):
            idx = asarray(idx)
        return X[idx], y[idx]

    def _step(self):
        """One gradient update on a random minibatch (sampled without replacement)."""
        num_train = len(self.X_train)
        idx = self._rng.choice(num_train, size=min(self.batch_size, num_train), replace=False)
        X_batch, y_batch = self._rows(self.X_train, self.y_train, idx)
        X_batch, y_batch = asarray(X_batch), asarray(y_batch)  # to the model's backend
        if self.augment is not None:
            X_batch = self.augment(X_batch, self._rng)

        loss, grads = self.model.loss(X_batch, y_batch)
        self.loss_history.append(to_float(loss))

        if self.lr_schedule is not None:
            lr = self.optim_config["learning_rate"] * float(self.lr_schedule(self.epoch))
            for config in self.optim_configs.values():
                config["learning_rate"] = lr
        for name, w in self.model.params.items():
            if name not in grads:
                raise ValueError(f"Solver._step: model.loss returned no gradient for "
                                 f"parameter {name!r}.")
            next_w, self.optim_configs[name] = self.update_rule(w, grads[name],
                                                                self.optim_configs[name])
            self.model.params[name] = next_w

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of examples in (X, y) that the model classifies correctly.

        If num_samples is given and smaller than len(X), a random subset of that size is used
        (drawn with the solver's seeded generator). Scores are computed in batches of
        batch_size to bound memory. Returns a Python float.
        """
        N = len(X)
        if num_samples is not None and num_samples < N:
            X, y = self._rows(X, y, self._rng.choice(N, size=num_samples, replace=False))
            N = num_samples
        correct = 0
        for start in range(0, N, batch_size):
            scores = self.model.loss(asarray(X[start:start + batch_size]))
            y_b = asarray(y[start:start + batch_size])
            xp = array_module(scores)
            correct = correct + xp.sum(xp.argmax(scores, axis=1) == y_b)  # stays on device
        return to_float(correct) / N

    def _save_checkpoint(self):
        if self.checkpoint_name is None:
            return None
        rule = self.update_rule
        checkpoint = {
            "model_class": type(self.model).__name__,
            "params": {k: to_numpy(v) for k, v in self.model.params.items()},
            "update_rule": getattr(rule, "__name__", repr(rule)),
            "lr_decay": self.lr_decay,
            "optim_config": {k: v for k, v in self.optim_config.items()
                             if isinstance(v, (int, float, str))},
            "batch_size": self.batch_size,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "epoch": self.epoch,
            "loss_history": list(self.loss_history),
            "train_acc_history": list(self.train_acc_history),
            "val_acc_history": list(self.val_acc_history),
        }
        filename = f"{self.checkpoint_name}_epoch_{self.epoch}.pkl"
        if self.verbose:
            self._print(f'Saving checkpoint to "{filename}"')
        with open(filename, "wb") as f:
            pickle.dump(checkpoint, f)
        return filename

    # ------------------------------------------------------------------------------------
    def _print(self, message):
        if self._bar is not None:
            self._bar.write(message)  # keeps the bar intact below the message
        else:
            print(message)

    def _make_bar(self, total):
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal
        except ImportError:
            return None  # no tqdm: the verbose prints are the progress report
        return tqdm(total=total, desc="training", unit="it")

    def train(self):
        """Run the optimisation; afterwards the model holds the best validation parameters."""
        num_train = len(self.X_train)
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = self.num_epochs * iterations_per_epoch
        self._bar = self._make_bar(num_iterations)
        deadline = None if self.time_budget is None else time.monotonic() + self.time_budget
        try:
            for t in range(num_iterations):
                self._step()
                if self._bar is not None:
                    self._bar.update(1)
                    if t % 10 == 0:  # a live, lightly smoothed loss beside the bar
                        recent = self.loss_history[-10:]
                        self._bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}",
                                              refresh=False)
                if self.verbose and t % self.print_every == 0:
                    self._print(f"(Iteration {t + 1} / {num_iterations}) "
                                f"loss: {self.loss_history[-1]:f}")

                epoch_end = (t + 1) % iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    if self.lr_schedule is None:
                        for config in self.optim_configs.values():
                            if "learning_rate" in config:
                                config["learning_rate"] *= self.lr_decay

                out_of_time = deadline is not None and time.monotonic() > deadline
                if t == 0 or epoch_end or out_of_time and t + 1 < num_iterations:
                    self._record_accuracy(num_epochs_done=self.epoch)
                if out_of_time and t + 1 < num_iterations:
                    self.stopped_early = True
                    self._print(f"Stopped after {t + 1} of {num_iterations} iterations: the "
                                f"time budget of {self.time_budget:g} s is used up.")
                    break
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None

        self.model.params.update(self.best_params)
        return self

    def _record_accuracy(self, num_epochs_done):
        train_acc = self.check_accuracy(self.X_train, self.y_train,
                                        num_samples=self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        self._save_checkpoint()
        if self.verbose:
            self._print(f"(Epoch {num_epochs_done} / {self.num_epochs}) "
                        f"train acc: {train_acc:f}; val_acc: {val_acc:f}")
        if val_acc > self.best_val_acc or not self.best_params:
            self.best_val_acc = val_acc
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}

    # ------------------------------------------------------------------------------------
    def plot_history(self, ax=None):
        """Plot the loss per iteration and train/val accuracy per epoch.

        ax: None (a new figure with two panels) or a pair of matplotlib Axes (loss, accuracy).
        Returns the pair of Axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(1, 2, figsize=(11, 4))
        if len(ax) != 2:
            raise ValueError("Solver.plot_history: ax must be None or two Axes (loss, accuracy).")
        loss_ax, acc_ax = ax
        loss_ax.plot(self.loss_history, ".", markersize=3, alpha=0.6)
        loss_ax.set(xlabel="iteration", ylabel="training loss", title="Loss")
        epochs = range(len(self.train_acc_history))
        acc_ax.plot(epochs, self.train_acc_history, "-o", label="train")
        acc_ax.plot(epochs, self.val_acc_history, "-o", label="val")
        acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Classification accuracy")
        acc_ax.legend()
        return ax
