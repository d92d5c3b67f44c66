"""Solver: trains a tiny softmax classifier (defined here, so these tests depend only on the
solver and optim), records its histories, restores the best parameters, writes checkpoints,
and rejects bad configuration."""
import pickle

import numpy as np
import pytest

from course_utils import backend, optim, schedules
from course_utils.backend import array_module, default_rng, randn
from course_utils.solver import Solver


class TinySoftmax:
    """Linear softmax classifier: scores = X @ W + b."""

    def __init__(self, dim, num_classes, seed=0, dtype=np.float64):
        rng = default_rng(seed)
        self.params = {"W": randn(rng, dim, num_classes, dtype=dtype, scale=1e-3),
                       "b": backend.xp.zeros(num_classes, dtype=dtype)}

    def loss(self, X, y=None):
        xp = array_module(X)
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        N = X.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = xp.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -xp.log(probs[xp.arange(N), y]).sum() / N
        probs[xp.arange(N), y] -= 1
        dscores = probs / N
        return loss, {"W": X.T @ dscores, "b": dscores.sum(axis=0)}


def blobs(n, dim=5, num_classes=3, seed=0):
    """Gaussian clusters around well separated centres: easy to classify."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((num_classes, dim))
    y = rng.integers(0, num_classes, size=n)
    X = centres[y] + 0.5 * rng.standard_normal((n, dim))
    return X, y


def tiny_data():
    X, y = blobs(120)
    return {"X_train": X[:80], "y_train": y[:80], "X_val": X[80:], "y_val": y[80:]}


def make_solver(model=None, **kwargs):
    opts = dict(update_rule="sgd", optim_config={"learning_rate": 0.5}, batch_size=20,
                num_epochs=4, verbose=False, seed=0)
    opts.update(kwargs)
    return Solver(model or TinySoftmax(5, 3), tiny_data(), **opts)


def test_solver_trains_and_records_histories():
    solver = make_solver()
    solver.train()
    iterations = 4 * (80 // 20)
    assert len(solver.loss_history) == iterations
    assert all(isinstance(v, float) for v in solver.loss_history)
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 4 + 1  # start + epochs
    assert np.mean(solver.loss_history[-4:]) < 0.5 * solver.loss_history[0]
    assert solver.val_acc_history[-1] > 0.9  # the clusters are well separated
    assert solver.best_val_acc == max(solver.val_acc_history)


def test_solver_restores_best_params_after_a_bad_late_update():
    calls = {"n": 0}

    def sgd_then_sabotage(w, dw, config):
        calls["n"] += 1
        if calls["n"] > 2 * 4 * 2:  # after epoch 2 (2 params x 4 iterations per epoch)
            return 0 * w, config  # all scores tie: argmax says class 0 for everyone
        return optim.sgd(w, dw, config)

    model = TinySoftmax(5, 3)
    solver = make_solver(model, update_rule=sgd_then_sabotage)
    solver.train()
    assert solver.val_acc_history[-1] < solver.best_val_acc  # the sabotage did hurt
    for k in model.params:
        assert np.array_equal(model.params[k], solver.best_params[k])
    assert solver.check_accuracy(solver.X_val, solver.y_val) == solver.best_val_acc


def test_same_seed_repeats_the_run_exactly():
    a, b = make_solver(), make_solver()
    a.train()
    b.train()
    assert a.loss_history == b.loss_history
    c = make_solver(seed=1)
    c.train()
    assert c.loss_history != a.loss_history


def test_checkpoints_are_written_each_epoch_with_numpy_params(tmp_path):
    name = str(tmp_path / "tiny")
    solver = make_solver(checkpoint_name=name, num_epochs=2)
    solver.train()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["tiny_epoch_0.pkl", "tiny_epoch_1.pkl", "tiny_epoch_2.pkl"]
    with open(tmp_path / "tiny_epoch_2.pkl", "rb") as f:
        ckpt = pickle.load(f)
    assert ckpt["epoch"] == 2 and ckpt["update_rule"] == "sgd"
    assert isinstance(ckpt["params"]["W"], np.ndarray)
    assert len(ckpt["loss_history"]) == 8


def test_lr_decay_multiplies_learning_rate_each_epoch():
    solver = make_solver(update_rule="sgd_momentum", lr_decay=0.5, num_epochs=3)
    solver.train()
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.5 * 0.5**3, rel=1e-12)
        assert "velocity" in config  # per-parameter state lives in the config


def test_lr_schedule_sets_rate_from_epoch():
    seen = []

    def recording_sgd(w, dw, config):
        seen.append(config["learning_rate"])
        return optim.sgd(w, dw, config)

    solver = make_solver(update_rule=recording_sgd, num_epochs=3,
                         lr_schedule=lambda e: schedules.step_decay(1.0, e, drop=0.1, every=1))
    solver.train()
    per_epoch = 2 * 4  # 2 params x 4 iterations
    expected = [0.5] * per_epoch + [0.05] * per_epoch + [0.005] * per_epoch
    assert seen == pytest.approx(expected, rel=1e-12)


def test_augment_sees_every_training_batch_and_never_the_accuracy_checks():
    class Recorder:
        def __init__(self):
            self.batches = []

        def __call__(self, X, rng):
            self.batches.append(X.copy())
            return X + 1.0  # so a batch that skipped augmentation would stand out

    seen = []

    class Watching(TinySoftmax):
        def loss(self, X, y=None):
            if y is not None:
                seen.append(X)
            return super().loss(X, y)

    record = Recorder()
    solver = make_solver(model=Watching(5, 3), augment=record)
    solver.train()
    assert len(record.batches) == len(solver.loss_history) == 16
    assert all(b.shape == (20, 5) for b in record.batches)
    assert all(np.array_equal(s, b + 1.0) for s, b in zip(seen, record.batches, strict=True))
    with pytest.raises(ValueError, match="augment must be None or a function"):
        make_solver(augment="flip")


class RowParity(TinySoftmax):
    """Column 0 of X holds the row's index; scores predict class 0 for even rows and 1 for
    odd ones. The test-mode rows it is asked about are recorded."""

    def __init__(self):
        super().__init__(1, 2)
        self.asked = []

    def loss(self, X, y=None):
        if y is not None:
            return super().loss(X, y)
        index = X[:, 0].astype(int)
        self.asked.extend(index.tolist())
        odd = index % 2
        return np.stack([1.0 - odd, odd], axis=1).astype(float)


def test_check_accuracy_counts_exactly_the_rows_it_scores():
    # Labels all 0: the model is right on the even rows only, so on all 40 rows the accuracy
    # is 20 / 40, and on a subsample it is the share of even rows among the rows it scored.
    model = RowParity()
    solver = make_solver(model)
    X, y = np.arange(40.0)[:, None], np.zeros(40, dtype=int)
    assert solver.check_accuracy(X, y, batch_size=7) == 0.5  # 40 rows in uneven batches
    assert sorted(model.asked) == list(range(40))            # each row scored once
    model.asked.clear()
    part = solver.check_accuracy(X, y, num_samples=10)
    assert len(model.asked) == 10 and len(set(model.asked)) == 10  # 10 distinct rows
    assert part == sum(i % 2 == 0 for i in model.asked) / 10
    even = solver.check_accuracy(X[::2], y[::2], num_samples=10)
    assert even == 1.0  # every subsample of the even rows is all right


def test_check_accuracy_after_training_equals_argmax_of_scores():
    solver = make_solver()
    solver.train()
    X, y = solver.X_val, solver.y_val
    direct = float(np.mean(np.argmax(solver.model.loss(X), axis=1) == y))
    assert solver.check_accuracy(X, y, batch_size=7) == direct


class Recording(TinySoftmax):
    """Remembers each training batch and the weights it was scored with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches, self.weights = [], []

    def loss(self, X, y=None):
        if y is not None:
            self.batches.append(X.copy())
            self.weights.append({k: v.copy() for k, v in self.params.items()})
        return super().loss(X, y)


def test_second_train_call_resumes_the_run_where_the_first_stopped():
    # train() twice for 2 epochs must continue one run: the same minibatch stream, Adam's
    # moments and step count, the epoch count that lr_decay follows, and the histories. The
    # reference is one 4-epoch run whose model gets, before step 9, the parameters the first
    # train() call ended with (it restores the best ones it saw), as the resumed run starts
    # from those. Both do the same arithmetic, so the losses must be identical.
    opts = dict(update_rule="adam", optim_config={"learning_rate": 0.05}, lr_decay=0.5)
    resumed_model = Recording(5, 3)
    resumed = make_solver(resumed_model, num_epochs=2, **opts)
    resumed.train()
    after_first = {k: v.copy() for k, v in resumed_model.params.items()}
    first_losses = list(resumed.loss_history)
    resumed.train()

    class SwapsInTheFirstCallsResult(Recording):
        def loss(self, X, y=None):
            if y is not None and len(self.batches) == 8:
                self.params.update({k: v.copy() for k, v in after_first.items()})
            return super().loss(X, y)

    whole_model = SwapsInTheFirstCallsResult(5, 3)
    whole = make_solver(whole_model, num_epochs=4, **opts)
    whole.train()

    assert len(resumed.loss_history) == 16 and resumed.loss_history[:8] == first_losses
    assert resumed.loss_history == whole.loss_history
    assert len(resumed_model.batches) == len(whole_model.batches) == 16
    for a, b in zip(resumed_model.batches, whole_model.batches, strict=True):
        assert np.array_equal(a, b)  # the minibatch stream goes on, not from its seed again
    for k in after_first:  # step 9 started from where the first call left the model
        assert np.array_equal(resumed_model.weights[8][k], after_first[k])
    assert resumed.epoch == whole.epoch == 4
    for k, config in resumed.optim_configs.items():
        assert config["t"] == whole.optim_configs[k]["t"] == 16       # Adam's step count
        assert config["learning_rate"] == pytest.approx(0.05 * 0.5**4, rel=1e-12)
        assert np.array_equal(config["m"], whole.optim_configs[k]["m"])


def test_bad_update_rule_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown update rule 'adma'.*'adam'.*'sgd'"):
        make_solver(update_rule="adma")


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match=r"Solver: unrecognized arguments \['learning_rate'\]"):
        make_solver(learning_rate=0.1)
    with pytest.raises(ValueError, match="Solver: data is missing \\['X_val', 'y_val'\\]"):
        Solver(TinySoftmax(5, 3), {"X_train": np.zeros((2, 5)), "y_train": np.zeros(2, int)})
    with pytest.raises(ValueError, match="Solver: give lr_decay or lr_schedule"):
        make_solver(lr_decay=0.9, lr_schedule=lambda e: 1.0)
    with pytest.raises(ValueError, match="Solver: X_train .* y_train"):
        data = tiny_data()
        data["y_train"] = data["y_train"][:-1]
        Solver(TinySoftmax(5, 3), data)


def test_verbose_training_with_progress_bar_prints_losses(capsys):
    solver = make_solver(verbose=True, progress=True, print_every=5, num_epochs=1)
    solver.train()
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "(Iteration 1 / 4) loss:" in text
    assert "(Epoch 1 / 1) train acc:" in text


def test_plot_history_draws_loss_and_accuracy():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    solver = make_solver(num_epochs=2)
    solver.train()
    loss_ax, acc_ax = solver.plot_history()
    assert len(loss_ax.lines[0].get_xdata()) == len(solver.loss_history)
    assert [len(line.get_ydata()) for line in acc_ax.lines] == [3, 3]
    plt.close("all")


@pytest.mark.gpu
def test_one_solver_step_on_cupy_matches_numpy(cupy_backend):
    updated = {}
    for name in ("numpy", "cupy"):
        backend.use(name)
        solver = make_solver(TinySoftmax(5, 3, seed=3), update_rule="adam",
                             optim_config={"learning_rate": 1e-2})
        solver._step()
        updated[name] = ({k: backend.to_numpy(v) for k, v in solver.model.params.items()},
                         solver.loss_history[0])
        if name == "cupy":
            assert backend.is_cupy_array(solver.model.params["W"])
    backend.use("cupy")
    (p_np, loss_np), (p_cp, loss_cp) = updated["numpy"], updated["cupy"]
    assert loss_cp == pytest.approx(loss_np, rel=1e-10)  # float64 both; reduction order differs
    for k in p_np:
        np.testing.assert_allclose(p_cp[k], p_np[k], rtol=1e-9, atol=1e-12)


class SlowSoftmax(TinySoftmax):
    """A student's slow layers: every training step sleeps."""

    def loss(self, X, y=None):
        if y is not None:
            import time
            time.sleep(0.05)
        return super().loss(X, y)


def test_a_time_budget_stops_a_slow_run_and_keeps_the_best_model_so_far(capsys):
    solver = make_solver(SlowSoftmax(5, 3), num_epochs=50, time_budget=0.3, verbose=True,
                         progress=False)
    solver.train()
    steps = len(solver.loss_history)
    assert solver.stopped_early and 2 <= steps <= 12  # ~6 steps of 0.05 s, not 200
    assert "time budget of 0.3 s is used up" in capsys.readouterr().out
    # accuracy was measured where it stopped, and the model holds the best of it
    assert len(solver.val_acc_history) >= 2
    assert solver.best_val_acc == max(solver.val_acc_history)
    fast = make_solver(num_epochs=2, time_budget=60.0)
    fast.train()
    assert not fast.stopped_early and len(fast.loss_history) == 2 * 4
    with pytest.raises(ValueError, match="time_budget"):
        make_solver(time_budget=0)
