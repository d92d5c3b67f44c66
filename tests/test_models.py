"""Models: forward values against independent numpy code, gradients against centered
differences (float64), sanity of the loss (log C at init, grows with reg), overfitting a tiny
training set, save/load round trips, and the same numbers on cupy when a GPU is present.

Gradient tolerances. A whole model passes through ReLUs and max pools, whose kinks spoil a
centered difference when a pre-activation lies within h of the kink; with random float64
inputs and h = 1e-6 that is rare, and the truncation error O(h^2) is negligible, so the
remaining error is roundoff, about 1e-16 * |loss| / h ~ 1e-10 absolute. Relative to gradient
entries of size 1e-3 or more that is < 1e-7; a few entries are smaller (biases feeding into
batch norm have true gradient ~0), so model-level checks use 1e-6 and say so where they do.
Any wrong term in a backward pass gives errors of 1e-2 or more.
"""
import math

import numpy as np
import pytest

from course_utils import backend
from course_utils.gradient_check import (eval_numerical_gradient, eval_numerical_gradient_array,
                                         rel_error)
from course_utils.models import (CaptioningRNN, ConvNet, DiscriminatorDC, DiscriminatorFC,
                                 FullyConnectedNet, GeneratorDC, GeneratorFC, ThreeLayerConvNet,
                                 TwoLayerNet, bce_with_logits, discriminator_loss,
                                 generator_loss, ls_discriminator_loss, ls_generator_loss)
from course_utils.solver import Solver

H_MODEL = 1e-6     # small step: fewer ReLU/max-pool kinks crossed (see module docstring)
MODEL_TOL = 1e-6   # roundoff ~1e-10 absolute over gradients >= ~1e-4 (see module docstring)
LAYER_TOL = 1e-7   # smooth maps (tanh, sigmoid, softmax): truncation O(h^2) ~ 1e-10


def grad_error(name, analytic, numeric, zero_grads):
    """rel_error, except for parameters whose true gradient is identically zero: a bias just
    before batch norm is removed again by the mean subtraction. There both sides are pure
    roundoff (analytic ~1e-17, numeric ~1e-11) and a relative error means nothing, so we
    check that both are tiny instead (returns 0 if so, 1 otherwise)."""
    if name in zero_grads:
        return 0.0 if max(np.abs(analytic).max(), np.abs(numeric).max()) < 1e-9 else 1.0
    return rel_error(analytic, numeric)


def model_grad_errors(model, X, y, h=H_MODEL, zero_grads=()):
    """Error between analytic and numerical gradient, per parameter."""
    _, grads = model.loss(X, y)
    errors = {}
    for name, param in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], param, verbose=False, h=h)
        errors[name] = grad_error(name, grads[name], num, zero_grads)
    return errors


def jitter_biases(params, seed=0):
    """Give every bias (b*) small random values. With the zero biases of a fresh model, a
    sample whose previous ReLU layer is all zero lands *exactly* on the next ReLU's kink
    (pre-activation 0 + 0), where the centered difference is meaningless."""
    rng = np.random.default_rng(seed)
    for name, value in params.items():
        if name.startswith("b"):
            value += 0.1 * rng.standard_normal(value.shape)


def assert_grads_ok(model, X, y, tol=MODEL_TOL, zero_grads=()):
    jitter_biases(model.params)
    errors = model_grad_errors(model, X, y, zero_grads=zero_grads)
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"gradient check failed: {bad}"


def random_problem(N=4, D=5, C=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.integers(0, C, size=N)


def overfit(model, X, y, rule="adam", lr=1e-2, epochs=30, batch_size=25):
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    solver = Solver(model, data, update_rule=rule, optim_config={"learning_rate": lr},
                    batch_size=batch_size, num_epochs=epochs, verbose=False, seed=0,
                    num_train_samples=None)
    solver.train()
    return solver


# ---------------------------------------------------------------------------------------
# TwoLayerNet
# ---------------------------------------------------------------------------------------

def test_two_layer_net_initial_loss_is_log_num_classes():
    X, y = random_problem(N=20, D=30, C=10)
    model = TwoLayerNet(input_dim=30, hidden_dim=40, num_classes=10, weight_scale=1e-3, seed=0)
    loss, _ = model.loss(X, y)
    assert abs(float(loss) - math.log(10)) < 1e-3  # scores ~1e-5: softmax is uniform


def test_two_layer_net_gradients_match_numerical_with_reg():
    X, y = random_problem()
    model = TwoLayerNet(input_dim=5, hidden_dim=6, num_classes=3, weight_scale=0.5,
                        reg=0.3, dtype=np.float64, seed=1)
    assert_grads_ok(model, X, y)


def test_two_layer_net_loss_grows_with_reg():
    X, y = random_problem()
    losses = [float(TwoLayerNet(5, 6, 3, weight_scale=0.5, reg=r, dtype=np.float64, seed=1)
                    .loss(X, y)[0]) for r in (0.0, 0.1, 1.0)]
    assert losses[0] < losses[1] < losses[2]


def test_two_layer_net_overfits_50_examples_and_stays_float32():
    X, y = random_problem(N=50, D=20, C=10, seed=3)
    model = TwoLayerNet(input_dim=20, hidden_dim=60, num_classes=10, weight_scale=0.1, seed=0)
    solver = overfit(model, X, y)
    assert solver.train_acc_history[-1] == 1.0
    assert all(v.dtype == np.float32 for v in model.params.values())  # float64 data, f32 model


def test_two_layer_net_rejects_bad_input():
    model = TwoLayerNet(5, 6, 3, seed=0)
    with pytest.raises(ValueError, match=r"TwoLayerNet.loss: X has shape \(2, 4\)"):
        model.loss(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"TwoLayerNet.loss: labels must lie in \[0, 3\)"):
        model.loss(np.zeros((2, 5)), np.array([0, 3]))
    with pytest.raises(ValueError, match="TwoLayerNet.loss: y must be \\(2,\\) integer labels"):
        model.loss(np.zeros((2, 5)), np.array([0.0, 1.0]))


# ---------------------------------------------------------------------------------------
# FullyConnectedNet
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_gradients_match_numerical(normalization):
    X, y = random_problem(N=5, D=4, C=3, seed=2)
    model = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, normalization=normalization,
                              reg=0.1, weight_scale=0.5, dtype=np.float64, seed=0)
    assert_grads_ok(model, X, y,
                    zero_grads=("b1", "b2") if normalization == "batchnorm" else ())


def test_fc_net_gradients_match_numerical_with_fixed_dropout_mask():
    X, y = random_problem(N=5, D=4, C=3, seed=4)
    model = FullyConnectedNet([7, 6], input_dim=4, num_classes=3, dropout_keep_ratio=0.6,
                              weight_scale=0.5, dtype=np.float64, seed=0)
    model.dropout_param["seed"] = 123  # the same mask for every call of the check
    assert_grads_ok(model, X, y)


def test_fc_net_dropout_masks_change_between_calls_but_repeat_with_seed():
    X, y = random_problem(N=8, D=4, C=3)

    def two_losses(seed):
        model = FullyConnectedNet([20], input_dim=4, num_classes=3, dropout_keep_ratio=0.5,
                                  weight_scale=0.5, dtype=np.float64, seed=seed)
        return float(model.loss(X, y)[0]), float(model.loss(X, y)[0])

    a1, a2 = two_losses(0)
    assert a1 != a2  # a fresh mask per training pass
    assert (a1, a2) == two_losses(0)  # ...drawn from the model's seeded generator


def test_fc_net_test_mode_is_deterministic_and_ignores_dropout():
    X, _ = random_problem(N=8, D=4, C=3)
    model = FullyConnectedNet([20], input_dim=4, num_classes=3, dropout_keep_ratio=0.5,
                              dtype=np.float64, seed=0)
    plain = FullyConnectedNet([20], input_dim=4, num_classes=3, dtype=np.float64, seed=0)
    assert np.array_equal(model.loss(X), plain.loss(X))


def test_fc_net_initial_loss_and_reg():
    X, y = random_problem(N=20, D=30, C=10)
    loss0 = float(FullyConnectedNet([40, 40], input_dim=30, weight_scale=1e-3, seed=0)
                  .loss(X, y)[0])
    assert abs(loss0 - math.log(10)) < 1e-3
    losses = [float(FullyConnectedNet([10], input_dim=30, weight_scale=0.1, reg=r, seed=0,
                                      dtype=np.float64).loss(X, y)[0]) for r in (0, 0.5)]
    assert losses[0] < losses[1]


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_fc_net_overfits_50_examples(normalization):
    X, y = random_problem(N=50, D=20, C=10, seed=5)
    model = FullyConnectedNet([50, 50], input_dim=20, num_classes=10, weight_scale=0.1,
                              normalization=normalization, seed=0)
    solver = overfit(model, X, y)
    assert solver.train_acc_history[-1] == 1.0


def test_fc_net_save_load_round_trip_keeps_params_and_running_stats(tmp_path):
    X, y = random_problem(N=10, D=4, C=3)
    kwargs = dict(input_dim=4, num_classes=3, normalization="batchnorm", weight_scale=0.3)
    model = FullyConnectedNet([6, 5], seed=0, **kwargs)
    model.loss(X, y)  # one training pass moves the running statistics away from 0 / 1
    model.save(tmp_path / "fc.npz")
    clone = FullyConnectedNet([6, 5], seed=99, **kwargs).load(tmp_path / "fc.npz")
    assert np.array_equal(clone.loss(X), model.loss(X))
    assert np.array_equal(clone.bn_params[0]["running_mean"], model.bn_params[0]["running_mean"])


def test_load_names_missing_and_mismatched_arrays(tmp_path):
    FullyConnectedNet([6], input_dim=4, num_classes=3, seed=0).save(tmp_path / "small")
    with pytest.raises(ValueError, match=r"missing \['param:W3', 'param:b3'\]"):
        FullyConnectedNet([6, 5], input_dim=4, num_classes=3).load(tmp_path / "small")
    with pytest.raises(ValueError, match=r"param:W1 has shape \(4, 6\) in the file but \(4, 7\)"):
        FullyConnectedNet([7], input_dim=4, num_classes=3).load(tmp_path / "small.npz")
    with pytest.raises(ValueError, match=r"missing \[.*'state:bn1.running_mean'"):
        FullyConnectedNet([6], input_dim=4, num_classes=3,
                          normalization="batchnorm").load(tmp_path / "small.npz")


def _doubled(forward, backward, calls):
    """A normalization layer's pair, wrapped to record each call in `calls` and to double its
    output (and so its backward's incoming gradient): a net that runs them shows it."""
    def doubled_forward(x, gamma, beta, param):
        calls.append("forward")
        out, cache = forward(x, gamma, beta, param)
        return 2 * out, cache

    def doubled_backward(dout, cache):
        calls.append("backward")
        return backward(2 * dout, cache)

    return doubled_forward, doubled_backward


def test_fc_net_trains_on_the_layer_functions_it_is_given():
    """A notebook passes the student's own layers: the net must call those, not the
    library's. Wrappers that count calls and scale the batch-norm output by 2 show both."""
    from course_utils import layers as lib

    X, y = random_problem(N=6, D=4, C=3, seed=3)
    calls = []

    # the graph version of the backward pass, not the default
    my_batchnorm_forward, my_batchnorm_backward = _doubled(lib.batchnorm_forward,
                                                           lib.batchnorm_backward, calls)

    kwargs = dict(input_dim=4, num_classes=3, normalization="batchnorm", weight_scale=0.5,
                  dtype=np.float64, seed=0)
    mine = FullyConnectedNet([6, 5], layers={"batchnorm_forward": my_batchnorm_forward,
                                             "batchnorm_backward": my_batchnorm_backward},
                             **kwargs)
    library = FullyConnectedNet([6, 5], **kwargs)
    assert mine.loss(X, y)[0] != library.loss(X, y)[0]  # the doubled output is used
    assert calls == ["forward", "forward", "backward", "backward"]
    assert_grads_ok(mine, X, y, zero_grads=("b1", "b2"))  # its backward matches its forward


def test_fc_net_with_the_library_functions_passed_explicitly_is_the_same_net():
    from course_utils import layers as lib

    X, y = random_problem(N=6, D=4, C=3, seed=3)
    kwargs = dict(input_dim=4, num_classes=3, normalization="layernorm", dropout_keep_ratio=0.7,
                  weight_scale=0.5, dtype=np.float64, seed=0)
    given = {"layernorm_forward": lib.layernorm_forward, "dropout_forward": lib.dropout_forward,
             "affine_forward": lib.affine_forward, "softmax_loss": lib.softmax_loss}
    loss_a, grads_a = FullyConnectedNet([6, 5], layers=given, **kwargs).loss(X, y)
    loss_b, grads_b = FullyConnectedNet([6, 5], **kwargs).loss(X, y)
    assert loss_a == loss_b
    assert all(np.array_equal(grads_a[k], grads_b[k]) for k in grads_b)


def test_fc_net_names_the_layer_functions_it_accepts():
    with pytest.raises(ValueError, match=r"layers has no 'batchnorm_fwd'; the functions this "
                                         r"model uses are affine_backward, affine_forward"):
        FullyConnectedNet([5], layers={"batchnorm_fwd": print})
    with pytest.raises(ValueError, match=r"layers\['relu_forward'\] must be a function, got int"):
        FullyConnectedNet([5], layers={"relu_forward": 3})


def test_fc_net_with_an_unwritten_layer_fails_at_once_with_the_students_error():
    def relu_forward(x):
        raise NotImplementedError("relu_forward: write it in fully_connected_nets.ipynb")

    X, y = random_problem(N=4, D=4, C=3)
    model = FullyConnectedNet([5], input_dim=4, num_classes=3, layers={"relu_forward": relu_forward})
    with pytest.raises(NotImplementedError, match="write it in fully_connected_nets"):
        model.loss(X, y)


def test_fc_net_rejects_bad_configuration():
    with pytest.raises(ValueError, match="FullyConnectedNet: normalization must be one of"):
        FullyConnectedNet([5], normalization="groupnorm")
    with pytest.raises(ValueError, match=r"FullyConnectedNet: dropout_keep_ratio .* \(0, 1\]"):
        FullyConnectedNet([5], dropout_keep_ratio=0)


# ---------------------------------------------------------------------------------------
# Convolutional networks
# ---------------------------------------------------------------------------------------

def image_problem(N=2, shape=(2, 6, 6), C=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, *shape)), rng.integers(0, C, size=N)


def test_three_layer_convnet_gradients_match_numerical():
    X, y = image_problem(N=2, shape=(2, 6, 6))
    model = ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=5,
                              num_classes=3, weight_scale=0.3, reg=0.05, dtype=np.float64, seed=0)
    assert_grads_ok(model, X, y)


def test_three_layer_convnet_initial_loss_and_output_shape():
    X, y = image_problem(N=4, shape=(3, 8, 8), C=10)
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=5, hidden_dim=10,
                              seed=0)
    assert model.params["W2"].shape == (4 * 4 * 4, 10)  # conv keeps 8x8, pool halves it
    assert model.loss(X).shape == (4, 10)
    assert abs(float(model.loss(X, y)[0]) - math.log(10)) < 1e-3


def test_three_layer_convnet_overfits_50_examples():
    X, y = image_problem(N=50, shape=(3, 8, 8), C=10, seed=1)
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=8, filter_size=3, hidden_dim=50,
                              weight_scale=0.05, seed=0)
    solver = overfit(model, X, y, epochs=25)
    assert solver.train_acc_history[-1] == 1.0


def test_three_layer_convnet_rejects_even_filters():
    with pytest.raises(ValueError, match="ThreeLayerConvNet: filter_size must be odd"):
        ThreeLayerConvNet(filter_size=4)


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_convnet_gradients_match_numerical(normalization):
    X, y = image_problem(N=3, shape=(2, 6, 6))
    model = ConvNet(input_dim=(2, 6, 6), conv_layers=(3, "pool", 3), hidden_dims=(4,),
                    num_classes=3, normalization=normalization, reg=0.05, dtype=np.float64,
                    seed=0)
    before_bn = ("b1", "b2", "b3") if normalization == "batchnorm" else ()
    assert_grads_ok(model, X, y, zero_grads=before_bn)


def test_convnet_layout_follows_the_layer_list():
    model = ConvNet(input_dim=(3, 16, 16), conv_layers=(8, 8, "pool", 16, "pool"),
                    hidden_dims=(32, 20), num_classes=10, seed=0)
    shapes = {k: tuple(v.shape) for k, v in model.params.items() if k.startswith("W")}
    assert shapes == {"W1": (8, 3, 3, 3), "W2": (8, 8, 3, 3), "W3": (16, 8, 3, 3),
                      "W4": (16 * 4 * 4, 32), "W5": (32, 20), "W6": (20, 10)}
    assert {f"gamma{i}" for i in range(1, 6)} <= set(model.params)
    assert "gamma6" not in model.params
    # He init: std sqrt(2 / fan_in) for ReLU layers
    assert abs(float(model.params["W4"].std()) - math.sqrt(2 / 256)) < 0.01


def test_convnet_rejects_bad_layer_lists():
    with pytest.raises(ValueError, match="ConvNet: every 'pool' must follow a convolution"):
        ConvNet(conv_layers=("pool", 8))
    with pytest.raises(ValueError, match="ConvNet: conv_layers entries"):
        ConvNet(conv_layers=(8, "avgpool"))
    with pytest.raises(ValueError, match="ConvNet: too many 'pool's"):
        ConvNet(input_dim=(1, 2, 2), conv_layers=(4, "pool", 4, "pool"))
    with pytest.raises(ValueError, match="H and W must be divisible"):
        ConvNet(input_dim=(1, 6, 6), conv_layers=(4, "pool", 4, "pool"))


def test_convnet_runs_on_the_layer_functions_it_is_given():
    """A notebook passes the student's spatial batch norm (and softmax): the net must call
    those. Wrappers that count calls and scale the spatial batch-norm output by 2 show it."""
    from course_utils import layers as lib

    X, y = image_problem(N=3, shape=(2, 6, 6))
    calls = []

    my_spatial_batchnorm_forward, my_spatial_batchnorm_backward = _doubled(
        lib.spatial_batchnorm_forward, lib.spatial_batchnorm_backward, calls)

    kwargs = dict(input_dim=(2, 6, 6), conv_layers=(3, "pool", 3), hidden_dims=(4,), num_classes=3,
                  normalization="batchnorm", dtype=np.float64, seed=0)
    mine = ConvNet(layers={"spatial_batchnorm_forward": my_spatial_batchnorm_forward,
                           "spatial_batchnorm_backward": my_spatial_batchnorm_backward}, **kwargs)
    library = ConvNet(**kwargs)
    assert mine.loss(X, y)[0] != library.loss(X, y)[0]  # the doubled output is used
    assert calls == ["forward", "forward", "backward", "backward"]
    assert_grads_ok(mine, X, y, zero_grads=("b1", "b2", "b3"))  # its backward matches its forward
    given = {name: getattr(lib, name) for name in ("affine_forward", "relu_forward", "softmax_loss")}
    loss_a, grads_a = ConvNet(layers=given, **kwargs).loss(X, y)
    loss_b, grads_b = library.loss(X, y)
    assert loss_a == loss_b and all(np.array_equal(grads_a[k], grads_b[k]) for k in grads_b)
    with pytest.raises(ValueError, match=r"ConvNet: layers has no 'spatial_bn'"):
        ConvNet(layers={"spatial_bn": print})


def test_convnet_overfits_50_examples_and_round_trips(tmp_path):
    X, y = image_problem(N=50, shape=(3, 8, 8), C=10, seed=2)
    model = ConvNet(input_dim=(3, 8, 8), conv_layers=(8, "pool", 16, "pool"), hidden_dims=(32,),
                    seed=0)
    solver = overfit(model, X, y, epochs=20)
    assert solver.train_acc_history[-1] == 1.0
    model.save(tmp_path / "convnet")
    clone = ConvNet(input_dim=(3, 8, 8), conv_layers=(8, "pool", 16, "pool"),
                    hidden_dims=(32,), seed=5).load(tmp_path / "convnet")
    assert np.array_equal(clone.loss(X), model.loss(X))


def trained_bn_convnet(input_dim=(2, 8, 8), conv_layers=(3, "pool", 4), hidden_dims=(5,)):
    """A float64 ConvNet with batch norm whose running statistics are not the defaults (a few
    training-mode passes), so test mode really differs from an identity normalisation."""
    model = ConvNet(input_dim=input_dim, conv_layers=conv_layers, hidden_dims=hidden_dims,
                    num_classes=3, normalization="batchnorm", dtype=np.float64, seed=1)
    jitter_biases(model.params, seed=3)
    X, y = image_problem(N=6, shape=input_dim, seed=4)
    for _ in range(3):
        model.loss(X, y)
    return model


def test_convnet_input_gradient_matches_numerical():
    # Saliency maps, fooling images and FGSM differentiate the test-mode network with
    # respect to its input: backward's dX must be d(sum(scores * dscores))/dX.
    model = trained_bn_convnet()
    X, _ = image_problem(N=2, shape=(2, 8, 8), seed=5)
    dscores = np.random.default_rng(6).standard_normal((2, 3))
    scores, cache = model.forward(X)
    assert np.array_equal(scores, model.loss(X))          # forward(test) is what loss(X) scores
    dX, grads = model.backward(dscores, cache)
    num = eval_numerical_gradient(lambda _: float(np.sum(model.forward(X)[0] * dscores)), X,
                                  verbose=False, h=H_MODEL)
    assert dX.shape == X.shape
    assert rel_error(dX, num) < MODEL_TOL
    assert set(grads) == set(model.params)                 # parameter gradients come along


def test_convnet_conv_features_run_at_any_size_and_backprop():
    # Style transfer evaluates the conv stack of a network trained on 8x8 inputs on larger
    # images, with losses on several blocks at once.
    model = trained_bn_convnet(conv_layers=(3, "pool", 4, 4))
    X = np.random.default_rng(7).standard_normal((1, 2, 10, 12))
    feats, cache = model.conv_features(X)
    assert [f.shape for f in feats] == [(1, 3, 5, 6), (1, 4, 5, 6), (1, 4, 5, 6)]
    rng = np.random.default_rng(8)
    d1, d3 = rng.standard_normal(feats[0].shape), rng.standard_normal(feats[2].shape)
    dX = model.conv_features_backward([d1, None, d3], cache)

    def objective(_):
        f, _ = model.conv_features(X)
        return float(np.sum(f[0] * d1) + np.sum(f[2] * d3))

    # h = 1e-5: this objective sums ~200 products, so its roundoff / h is 10x that of one
    # score; a larger step keeps that below the tolerance (truncation stays ~1e-10, and a
    # crossed ReLU/pool kink would show as an error of 1e-2, not hide).
    assert rel_error(dX, eval_numerical_gradient(objective, X, verbose=False, h=1e-5)) \
        < MODEL_TOL
    two, _ = model.conv_features(X, num_blocks=2)
    assert len(two) == 2 and np.array_equal(two[1], feats[1])


def test_convnet_conv_features_reject_bad_input():
    model = ConvNet(input_dim=(3, 8, 8), conv_layers=(4, "pool", 4, "pool"), hidden_dims=(),
                    seed=0)
    with pytest.raises(ValueError, match="num_blocks must be in 1..2"):
        model.conv_features(np.zeros((1, 3, 8, 8)), num_blocks=3)
    with pytest.raises(ValueError, match=r"X must be \(N, 3, H, W\)"):
        model.conv_features(np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="divisible by 4, got 3x8"):
        model.conv_features(np.zeros((1, 3, 3, 8)))
    with pytest.raises(ValueError, match="divisible by 4, got 12x10"):
        model.conv_features(np.zeros((1, 3, 12, 10)))
    assert model.conv_features(np.zeros((1, 3, 12, 16)))[0][1].shape == (1, 4, 3, 4)
    _, cache = model.conv_features(np.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="expected 2 gradients"):
        model.conv_features_backward([None], cache)
    with pytest.raises(ValueError, match="every gradient is None"):
        model.conv_features_backward([None, None], cache)


# ---------------------------------------------------------------------------------------
# CaptioningRNN
# ---------------------------------------------------------------------------------------

WORDS = ["<NULL>", "<START>", "<END>", "a", "cat", "dog", "sits", "runs", "on", "mat"]
W2I = {w: i for i, w in enumerate(WORDS)}


def encode(sentence, length):
    ids = [W2I["<START>"]] + [W2I[w] for w in sentence.split()] + [W2I["<END>"]]
    return ids + [W2I["<NULL>"]] * (length - len(ids))


def reference_rnn_caption_loss(model, features, captions):
    """The vanilla-RNN captioning loss written out directly with numpy."""
    p = model.params
    h = features @ p["W_proj"] + p["b_proj"]
    total = 0.0
    for t in range(captions.shape[1] - 1):
        x = p["W_embed"][captions[:, t]]
        h = np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        scores = h @ p["W_vocab"] + p["b_vocab"]
        log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        target = captions[:, t + 1]
        keep = target != W2I["<NULL>"]
        total -= log_probs[np.arange(len(target)), target][keep].sum()
    return total / captions.shape[0]


def test_captioning_rnn_loss_matches_direct_computation():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((3, 6))
    captions = np.array([encode("a cat sits", 6), encode("a dog", 6), encode("dog", 6)])
    model = CaptioningRNN(W2I, input_dim=6, wordvec_dim=4, hidden_dim=5, dtype=np.float64,
                          seed=0)
    loss, _ = model.loss(features, captions)
    assert abs(float(loss) - reference_rnn_caption_loss(model, features, captions)) < 1e-12


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_captioning_rnn_gradients_match_numerical(cell_type):
    rng = np.random.default_rng(2)
    features = rng.standard_normal((2, 4))
    captions = np.array([encode("a cat runs", 6), encode("dog", 6)])
    model = CaptioningRNN(W2I, input_dim=4, wordvec_dim=3, hidden_dim=4, cell_type=cell_type,
                          dtype=np.float64, seed=0)
    for name in model.params:  # nonzero biases and a larger embedding: no all-zero gradients
        model.params[name] += 0.3 * rng.standard_normal(model.params[name].shape)
    _, grads = model.loss(features, captions)
    for name, param in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], param,
                                      verbose=False)
        # Smooth, but the loss is ~7 (summed over T), so roundoff in the numerical gradient
        # is ~1e-10 absolute, and some entries are ~1e-4: MODEL_TOL, not LAYER_TOL.
        assert rel_error(grads[name], num) < MODEL_TOL, name


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_captioning_rnn_overfits_tiny_caption_set_and_samples_it_back(cell_type, tmp_path):
    sentences = ["a cat sits on a mat", "a dog runs", "cat runs on a mat", "dog sits"]
    T1 = 9
    captions = np.array([encode(s, T1) for s in sentences])
    rng = np.random.default_rng(2)
    features = rng.standard_normal((len(sentences), 8))
    model = CaptioningRNN(W2I, input_dim=8, wordvec_dim=16, hidden_dim=32, cell_type=cell_type,
                          dtype=np.float64, seed=0)
    from course_utils import optim
    configs = {k: {"learning_rate": 2e-2} for k in model.params}
    for _ in range(300):
        loss, grads = model.loss(features, captions)
        for k in model.params:
            model.params[k], configs[k] = optim.adam(model.params[k], grads[k], configs[k])
    assert float(model.loss(features, captions)[0]) < 0.1

    sampled = model.sample(features, max_length=T1 - 1)
    assert np.array_equal(sampled, captions[:, 1:])  # words after <START>, then <NULL>s
    assert model.decode(sampled) == sentences

    model.save(tmp_path / "cap.npz")
    clone = CaptioningRNN(W2I, input_dim=8, wordvec_dim=16, hidden_dim=32, cell_type=cell_type,
                          dtype=np.float64, seed=7).load(tmp_path / "cap.npz")
    assert np.array_equal(clone.sample(features, max_length=T1 - 1), sampled)


def test_captioning_rnn_rejects_bad_input():
    with pytest.raises(ValueError, match=r"CaptioningRNN: word_to_idx lacks .*'<END>'"):
        CaptioningRNN({"<NULL>": 0, "<START>": 1, "a": 2}, input_dim=4)
    model = CaptioningRNN(W2I, input_dim=4, wordvec_dim=3, hidden_dim=4, seed=0)
    with pytest.raises(ValueError, match=r"CaptioningRNN.loss: features must be .* \(N, 4\)"):
        model.loss(np.zeros((2, 5)), np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
        model.loss(np.zeros((2, 4)), np.full((2, 4), 10))


# ---------------------------------------------------------------------------------------
# GAN parts and losses
# ---------------------------------------------------------------------------------------

def check_net_backward(net, x, dout, zero_grads=()):
    """dx and every parameter gradient of net.forward against numerical gradients of
    sum(forward(x) * dout)."""
    jitter_biases(net.params)
    _, cache = net.forward(x)
    dx, grads = net.backward(dout, cache)
    num_dx = eval_numerical_gradient_array(lambda v: net.forward(v)[0], x, dout, h=H_MODEL)
    errors = {"x": rel_error(dx, num_dx)}
    for name, param in net.params.items():
        num = eval_numerical_gradient_array(lambda _: net.forward(x)[0], param, dout, h=H_MODEL)
        errors[name] = grad_error(name, grads[name], num, zero_grads)
    bad = {k: v for k, v in errors.items() if not v < MODEL_TOL}
    assert not bad, f"gradient check failed: {bad}"


def test_fc_generator_and_discriminator_backward_match_numerical():
    rng = np.random.default_rng(0)
    G = GeneratorFC(noise_dim=3, hidden_dims=[5, 4], output_dim=6, dtype=np.float64, seed=0)
    D = DiscriminatorFC(input_dim=6, hidden_dims=[5], dtype=np.float64, seed=1)
    z = rng.standard_normal((4, 3))
    samples, _ = G.forward(z)
    assert samples.shape == (4, 6) and np.abs(samples).max() < 1
    check_net_backward(G, z, rng.standard_normal((4, 6)))
    check_net_backward(D, rng.standard_normal((4, 6)), rng.standard_normal(4))


def test_dc_generator_and_discriminator_backward_match_numerical():
    rng = np.random.default_rng(1)
    G = GeneratorDC(noise_dim=3, output_shape=(1, 8, 8), channels=(4, 2), weight_scale=0.3,
                    dtype=np.float64, seed=0)
    D = DiscriminatorDC(input_shape=(1, 8, 8), channels=(2, 3), weight_scale=0.3,
                        dtype=np.float64, seed=1)
    z = rng.standard_normal((3, 3))
    images, _ = G.forward(z)
    assert images.shape == (3, 1, 8, 8)
    assert D.forward(images)[0].shape == (3,)
    check_net_backward(G, z, rng.standard_normal((3, 1, 8, 8)), zero_grads=("b1", "b2"))
    check_net_backward(D, rng.standard_normal((3, 1, 8, 8)), rng.standard_normal(3))


def test_generator_gradient_flows_through_discriminator():
    rng = np.random.default_rng(2)
    G = GeneratorFC(noise_dim=3, hidden_dims=[5], output_dim=4, dtype=np.float64, seed=0)
    D = DiscriminatorFC(input_dim=4, hidden_dims=[5], dtype=np.float64, seed=1)
    z = rng.standard_normal((6, 3))

    def g_loss(_):
        return generator_loss(D.forward(G.forward(z)[0])[0])[0]

    fake, g_cache = G.forward(z)
    logits, d_cache = D.forward(fake)
    _, dlogits = generator_loss(logits)
    dfake, _ = D.backward(dlogits, d_cache)
    _, g_grads = G.backward(dfake, g_cache)
    for name, param in G.params.items():
        num = eval_numerical_gradient(g_loss, param, verbose=False, h=H_MODEL)
        assert rel_error(g_grads[name], num) < MODEL_TOL, name


def test_gan_parts_run_on_the_activation_functions_they_are_given():
    from course_utils import layers as lib

    calls = []

    def counted(name, scale=1.0):
        def function(*args):
            calls.append(name)
            out = getattr(lib, name)(*args)
            return (scale * out[0], out[1]) if name.endswith("forward") else scale * out
        return function

    given = {name: counted(name, 2.0 if name == "tanh_forward" else 1.0)
             for name in ("leaky_relu_forward", "leaky_relu_backward", "tanh_forward", "tanh_backward")}
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3, 3))
    for make in (lambda **kw: GeneratorFC(3, [4], 6, dtype=np.float64, seed=0, **kw),
                 lambda **kw: GeneratorDC(3, (1, 8, 8), channels=(2,), dtype=np.float64, seed=0, **kw)):
        calls.clear()
        mine, library = make(layers=given), make()
        out, cache = mine.forward(z)
        assert np.allclose(out, 2 * library.forward(z)[0])  # the doubled tanh is used
        mine.backward(np.ones_like(out), cache)
        assert "tanh_forward" in calls and "tanh_backward" in calls
    for make, x in ((lambda **kw: DiscriminatorFC(6, [4], dtype=np.float64, seed=1, **kw),
                     rng.standard_normal((3, 6))),
                    (lambda **kw: DiscriminatorDC((1, 8, 8), channels=(2,), dtype=np.float64,
                                                  seed=1, **kw), rng.standard_normal((3, 1, 8, 8)))):
        calls.clear()
        logits, cache = make(layers=given).forward(x)
        assert np.array_equal(logits, make().forward(x)[0])  # same functions, same numbers
        make(layers=given).backward(np.ones_like(logits), cache)
        assert calls == ["leaky_relu_forward", "leaky_relu_backward"]
    with pytest.raises(ValueError, match=r"GeneratorFC: layers has no 'relu_forward'"):
        GeneratorFC(3, [4], 6, layers={"relu_forward": lib.relu_forward})


def test_bce_with_logits_matches_definition_and_is_stable():
    s = np.linspace(-4, 4, 9)
    t = np.linspace(0, 1, 9)
    sig = 1 / (1 + np.exp(-s))
    expected = np.mean(-t * np.log(sig) - (1 - t) * np.log(1 - sig))
    loss, ds = bce_with_logits(s, t)
    assert abs(float(loss) - expected) < 1e-14
    assert rel_error(ds, eval_numerical_gradient(lambda v: bce_with_logits(v, t)[0], s.copy(),
                                                 verbose=False)) < LAYER_TOL
    with np.errstate(over="raise"):
        big, _ = bce_with_logits(np.array([1000.0, -1000.0]), np.array([1.0, 1.0]))
    assert float(big) == pytest.approx(500.0)  # (0 + 1000) / 2: -log sigmoid(-1000) = 1000


def test_gan_losses_values_and_gradients():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal(5), rng.standard_normal(5)

    def softplus(v):
        return np.log1p(np.exp(v))
    d_loss, (d_real, d_fake) = discriminator_loss(real, fake)
    assert abs(float(d_loss) - (softplus(-real).mean() + softplus(fake).mean())) < 1e-14
    g_loss, g_fake = generator_loss(fake)
    assert abs(float(g_loss) - softplus(-fake).mean()) < 1e-14
    ls_d, (ls_real, ls_fake) = ls_discriminator_loss(real, fake)
    assert abs(float(ls_d) - (0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean())) < 1e-14
    ls_g, ls_g_fake = ls_generator_loss(fake)
    assert abs(float(ls_g) - 0.5 * ((fake - 1) ** 2).mean()) < 1e-14

    def num(f, v):
        return eval_numerical_gradient(f, v.copy(), verbose=False)
    assert rel_error(d_real, num(lambda v: discriminator_loss(v, fake)[0], real)) < LAYER_TOL
    assert rel_error(d_fake, num(lambda v: discriminator_loss(real, v)[0], fake)) < LAYER_TOL
    assert rel_error(g_fake, num(lambda v: generator_loss(v)[0], fake)) < LAYER_TOL
    assert rel_error(ls_real, num(lambda v: ls_discriminator_loss(v, fake)[0], real)) < LAYER_TOL
    assert rel_error(ls_fake, num(lambda v: ls_discriminator_loss(real, v)[0], fake)) < LAYER_TOL
    assert rel_error(ls_g_fake, num(lambda v: ls_generator_loss(v)[0], fake)) < LAYER_TOL


def test_gan_parts_reject_bad_shapes_and_round_trip(tmp_path):
    with pytest.raises(ValueError,
                       match=r"GeneratorDC: output_shape .* divisible by 2\^len\(channels\) = 4"):
        GeneratorDC(noise_dim=3, output_shape=(1, 10, 10), channels=(4, 2))
    with pytest.raises(ValueError, match="bce_with_logits: logits .* same shape"):
        bce_with_logits(np.zeros(3), np.zeros(4))
    G = GeneratorDC(noise_dim=3, output_shape=(1, 8, 8), channels=(4, 2), seed=0)
    z = np.random.default_rng(0).standard_normal((5, 3))
    G.forward(z)  # train mode: running statistics move
    G.save(tmp_path / "g.npz")
    clone = GeneratorDC(noise_dim=3, output_shape=(1, 8, 8), channels=(4, 2), seed=1)
    clone.load(tmp_path / "g.npz")
    assert np.array_equal(clone.forward(z, mode="test")[0], G.forward(z, mode="test")[0])


# ---------------------------------------------------------------------------------------
# Scores against the same network written out with plain numpy
# ---------------------------------------------------------------------------------------
# Gradient checks only prove that backward matches forward: a forward pass with average
# instead of max pooling, or without its ReLUs, passes them (its backward changes with it).
# So every model's output is also compared with a composition written here from matrix
# products, np.maximum, reshapes and explicit loops, calling no course_utils layer.
#
# Tolerance: float64 on both sides, summed in other orders (im2col GEMMs against tensordot
# over windows), which moves results by ~1e-15 of the largest terms summed. 1e-10 relative to
# the largest score leaves a wide margin; any change of structure moves scores by 1e-2 or more.


def assert_same_scores(got, expected):
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


def np_relu(a):
    return np.maximum(a, 0)


def np_leaky_relu(a, alpha):
    return np.where(a > 0, a, alpha * a)


def np_conv(x, w, b, stride, pad):
    """Cross-correlation: output pixel (i, j) is the dot product of each filter with the
    window of the zero-padded input whose top left corner is (i * stride, j * stride)."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - HH) // stride + 1, (W + 2 * pad - WW) // stride + 1
    out = np.empty((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = xpad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def np_conv_transpose(x, w, b, stride, pad):
    """Transposed convolution: each input pixel adds its channel vector times w (C, F, HH, WW)
    onto the output at stride spacing; then a border of width pad is cut off."""
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    full = np.zeros((N, F, stride * (H - 1) + HH, stride * (W - 1) + WW))
    for i in range(H):
        for j in range(W):
            full[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += \
                np.tensordot(x[:, :, i, j], w, axes=(1, 0))
    cut = full[:, :, pad:full.shape[2] - pad, pad:full.shape[3] - pad]
    return cut + b.reshape(1, F, 1, 1)


def np_max_pool_2x2(x):
    """2x2 max pooling, stride 2: split H and W into pairs and take the max of each block."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))


def np_batchnorm(a, gamma, beta, mean=None, var=None, eps=1e-5):
    """Normalise a (N, D) or (N, C, H, W) per feature / channel (axis 1) with the given
    statistics, or with the batch's own (biased variance) when none are given."""
    axes = (0,) if a.ndim == 2 else (0, 2, 3)
    mean = a.mean(axis=axes) if mean is None else mean
    var = a.var(axis=axes) if var is None else var
    shape = (1, -1) + (1,) * (a.ndim - 2)
    return gamma.reshape(shape) * (a - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) \
        + beta.reshape(shape)


def np_layernorm(a, gamma, beta, eps=1e-5):
    return gamma * (a - a.mean(axis=1, keepdims=True)) / np.sqrt(a.var(axis=1, keepdims=True)
                                                                  + eps) + beta


def np_softmax_loss(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean()


def perturb_params(model, seed):
    """Move every parameter off its initial value (nonzero biases and betas, gammas away from
    1) and batch-norm running statistics off 0 / 1, so that no term can be left out unseen."""
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        value += 0.3 * rng.standard_normal(value.shape)
    for bn_param in getattr(model, "bn_params", []):
        bn_param["running_mean"] = rng.standard_normal(bn_param["running_mean"].shape)
        bn_param["running_var"] = rng.uniform(0.5, 2.0, bn_param["running_var"].shape)


def assert_relus_bite(*pre_activations):
    """The inputs must give some negative pre-activations, or a missing ReLU would not show."""
    for a in pre_activations:
        assert (a < 0).mean() > 0.1 and (a > 0).mean() > 0.1


def np_fc_net_scores(model, X, mode):
    p, L = model.params, model.num_layers
    h = X.reshape(len(X), -1)
    pre = []
    for i in range(1, L):
        a = h @ p[f"W{i}"] + p[f"b{i}"]
        if model.normalization == "batchnorm":
            bn = model.bn_params[i - 1]
            a = np_batchnorm(a, p[f"gamma{i}"], p[f"beta{i}"],
                             *((None, None) if mode == "train"
                               else (bn["running_mean"], bn["running_var"])))
        elif model.normalization == "layernorm":
            a = np_layernorm(a, p[f"gamma{i}"], p[f"beta{i}"])
        pre.append(a)
        h = np_relu(a)
    return h @ p[f"W{L}"] + p[f"b{L}"], pre


def test_two_layer_net_scores_with_negative_hidden_units_match_numpy():
    X, y = random_problem(N=6, D=5, C=3, seed=8)
    model = TwoLayerNet(input_dim=5, hidden_dim=7, num_classes=3, weight_scale=0.5,
                        dtype=np.float64, seed=2)
    perturb_params(model, seed=9)
    p = model.params
    pre = X @ p["W1"] + p["b1"]
    assert_relus_bite(pre)
    expected = np_relu(pre) @ p["W2"] + p["b2"]
    assert_same_scores(model.loss(X), expected)
    assert float(model.loss(X, y)[0]) == pytest.approx(np_softmax_loss(expected, y), rel=1e-12)


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_scores_match_numpy_composition(normalization):
    X, _ = random_problem(N=6, D=4, C=3, seed=6)
    model = FullyConnectedNet([7, 5, 6], input_dim=4, num_classes=3, weight_scale=0.6,
                              normalization=normalization, dtype=np.float64, seed=0)
    perturb_params(model, seed=1)
    expected, pre = np_fc_net_scores(model, X, mode="test")
    assert_relus_bite(*pre)
    assert_same_scores(model.loss(X), expected)


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_fc_net_training_loss_matches_numpy_composition(normalization):
    # train mode: batch norm with this batch's statistics
    X, y = random_problem(N=8, D=4, C=3, seed=7)
    model = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, weight_scale=0.6,
                              normalization=normalization, dtype=np.float64, seed=0)
    perturb_params(model, seed=2)
    scores, _ = np_fc_net_scores(model, X, mode="train")
    loss, _ = model.loss(X, y)
    assert float(loss) == pytest.approx(np_softmax_loss(scores, y), rel=1e-12)


def test_fc_net_training_loss_with_dropout_matches_numpy_composition():
    # A fixed seed gives every layer the mask RandomState(seed).rand(N, d) < p (keep), with
    # kept units scaled by 1 / p (inverted dropout), after each hidden ReLU.
    X, y = random_problem(N=8, D=4, C=3, seed=9)
    keep = 0.6
    model = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, dropout_keep_ratio=keep,
                              weight_scale=0.6, dtype=np.float64, seed=0)
    perturb_params(model, seed=3)
    model.dropout_param["seed"] = 42
    p = model.params
    h = X
    for i in (1, 2):
        h = np_relu(h @ p[f"W{i}"] + p[f"b{i}"])
        h = h * (np.random.RandomState(42).rand(*h.shape) < keep) / keep
    expected = np_softmax_loss(h @ p["W3"] + p["b3"], y)
    assert float(model.loss(X, y)[0]) == pytest.approx(expected, rel=1e-12)


def test_three_layer_convnet_scores_match_numpy_composition():
    X, _ = image_problem(N=3, shape=(2, 6, 8), seed=3)
    model = ThreeLayerConvNet(input_dim=(2, 6, 8), num_filters=4, filter_size=3, hidden_dim=5,
                              num_classes=3, weight_scale=0.4, dtype=np.float64, seed=0)
    perturb_params(model, seed=4)
    p = model.params
    conv = np_conv(X, p["W1"], p["b1"], stride=1, pad=1)          # 'same' size: 6x8
    pooled = np_max_pool_2x2(np_relu(conv))                       # 3x4
    hidden = pooled.reshape(3, -1) @ p["W2"] + p["b2"]
    assert_relus_bite(conv, hidden)
    expected = np_relu(hidden) @ p["W3"] + p["b3"]
    assert_same_scores(model.loss(X), expected)


def test_three_layer_convnet_rejects_odd_image_sizes_it_cannot_pool():
    with pytest.raises(ValueError, match=r"ThreeLayerConvNet: input_dim \(3, 7, 8\) .* even"):
        ThreeLayerConvNet(input_dim=(3, 7, 8))


def np_convnet_scores(model, X, mode):
    """ConvNet written out: {conv3x3 - [bn] - ReLU - [2x2 max pool]} per block, then
    {affine - [bn] - ReLU} per hidden layer, then the score layer."""
    p, bn = model.params, model.normalization == "batchnorm"
    pre = []

    def normalise(a, i):
        if not bn:
            return a
        stats = model.bn_params[i - 1]
        if mode == "train":
            return np_batchnorm(a, p[f"gamma{i}"], p[f"beta{i}"])
        return np_batchnorm(a, p[f"gamma{i}"], p[f"beta{i}"], stats["running_mean"],
                            stats["running_var"])

    h = X
    for i, (_, pool) in enumerate(model.blocks, start=1):
        a = normalise(np_conv(h, p[f"W{i}"], p[f"b{i}"], stride=1, pad=1), i)
        pre.append(a)
        h = np_relu(a)
        if pool:
            h = np_max_pool_2x2(h)
    h = h.reshape(len(X), -1)
    for i in range(model.num_conv + 1, model.num_layers):
        a = normalise(h @ p[f"W{i}"] + p[f"b{i}"], i)
        pre.append(a)
        h = np_relu(a)
    L = model.num_layers
    return h @ p[f"W{L}"] + p[f"b{L}"], pre


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_convnet_scores_match_numpy_composition(normalization):
    X, y = image_problem(N=4, shape=(2, 8, 8), seed=5)
    model = ConvNet(input_dim=(2, 8, 8), conv_layers=(3, "pool", 4, 4, "pool"),
                    hidden_dims=(5,), num_classes=3, normalization=normalization,
                    dtype=np.float64, seed=0)
    perturb_params(model, seed=6)
    expected, pre = np_convnet_scores(model, X, mode="test")
    assert_relus_bite(*pre)
    assert_same_scores(model.loss(X), expected)
    assert_same_scores(model.forward(X)[0], expected)
    # and in training mode (batch statistics for batch norm), through the loss
    train_scores, _ = np_convnet_scores(model, X, mode="train")
    assert float(model.loss(X, y)[0]) == pytest.approx(np_softmax_loss(train_scores, y),
                                                       rel=1e-12)


def test_convnet_conv_features_match_numpy_composition():
    model = ConvNet(input_dim=(2, 8, 8), conv_layers=(3, "pool", 4), hidden_dims=(),
                    num_classes=3, normalization=None, dtype=np.float64, seed=0)
    perturb_params(model, seed=7)
    p = model.params
    X = np.random.default_rng(8).standard_normal((2, 2, 12, 4))  # not the training size
    first = np_max_pool_2x2(np_relu(np_conv(X, p["W1"], p["b1"], stride=1, pad=1)))
    second = np_relu(np_conv(first, p["W2"], p["b2"], stride=1, pad=1))
    feats, _ = model.conv_features(X)
    assert_same_scores(feats[0], first)
    assert_same_scores(feats[1], second)


def test_fc_gan_parts_match_numpy_composition():
    rng = np.random.default_rng(10)
    G = GeneratorFC(noise_dim=3, hidden_dims=[5, 4], output_dim=6, alpha=0.1,
                    dtype=np.float64, seed=0)
    D = DiscriminatorFC(input_dim=6, hidden_dims=[5], alpha=0.2, dtype=np.float64, seed=1)
    perturb_params(G, seed=11)
    perturb_params(D, seed=12)
    z, x = rng.standard_normal((4, 3)), rng.standard_normal((4, 2, 3))
    g = G.params
    h = np_leaky_relu(z @ g["W1"] + g["b1"], 0.1)
    h = np_leaky_relu(h @ g["W2"] + g["b2"], 0.1)
    assert_same_scores(G.forward(z)[0], np.tanh(h @ g["W3"] + g["b3"]))
    d = D.params
    h = np_leaky_relu(x.reshape(4, 6) @ d["W1"] + d["b1"], 0.2)
    assert_same_scores(D.forward(x)[0], (h @ d["W2"] + d["b2"])[:, 0])


@pytest.mark.parametrize("mode", ["train", "test"])
def test_dc_generator_matches_numpy_composition(mode):
    G = GeneratorDC(noise_dim=3, output_shape=(2, 8, 8), channels=(4, 3), weight_scale=0.3,
                    dtype=np.float64, seed=0)
    perturb_params(G, seed=13)
    z = np.random.default_rng(14).standard_normal((5, 3))
    p, bn = G.params, G.bn_params

    def normalise(a, i):
        if mode == "train":
            return np_batchnorm(a, p[f"gamma{i}"], p[f"beta{i}"])
        return np_batchnorm(a, p[f"gamma{i}"], p[f"beta{i}"], bn[i - 1]["running_mean"],
                            bn[i - 1]["running_var"])

    # (the forward pass updates running statistics in train mode: compute these first)
    h = np_relu(normalise(z @ p["W1"] + p["b1"], 1)).reshape(5, 4, 2, 2)
    h = np_relu(normalise(np_conv_transpose(h, p["W2"], p["b2"], stride=2, pad=1), 2))
    expected = np.tanh(np_conv_transpose(h, p["W3"], p["b3"], stride=2, pad=1))
    assert_same_scores(G.forward(z, mode=mode)[0], expected)


def test_dc_discriminator_matches_numpy_composition():
    D = DiscriminatorDC(input_shape=(2, 8, 8), channels=(3, 4), alpha=0.2, weight_scale=0.3,
                        dtype=np.float64, seed=0)
    perturb_params(D, seed=15)
    x = np.random.default_rng(16).standard_normal((3, 2, 8, 8))
    p = D.params
    h = np_leaky_relu(np_conv(x, p["W1"], p["b1"], stride=2, pad=1), 0.2)   # 4x4
    h = np_leaky_relu(np_conv(h, p["W2"], p["b2"], stride=2, pad=1), 0.2)   # 2x2
    assert_same_scores(D.forward(x)[0], (h.reshape(3, -1) @ p["W3"] + p["b3"])[:, 0])


def np_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_caption_step(model, x, h, c):
    """One step of the model's cell: vanilla RNN h = tanh(a), or an LSTM with gates i, f, o, g
    in that order along the 4H activations."""
    p = model.params
    a = x @ p["Wx"] + h @ p["Wh"] + p["b"]
    if model.cell_type == "rnn":
        return np.tanh(a), c
    i, f, o, g = np.split(a, 4, axis=1)
    c = np_sigmoid(f) * c + np_sigmoid(i) * np.tanh(g)
    return np_sigmoid(o) * np.tanh(c), c


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_captioning_rnn_loss_matches_numpy_for_both_cells(cell_type):
    rng = np.random.default_rng(17)
    features = rng.standard_normal((3, 6))
    captions = np.array([encode("a cat sits", 6), encode("a dog", 6), encode("dog", 6)])
    model = CaptioningRNN(W2I, input_dim=6, wordvec_dim=4, hidden_dim=5, cell_type=cell_type,
                          dtype=np.float64, seed=0)
    perturb_params(model, seed=18)
    p = model.params
    h = features @ p["W_proj"] + p["b_proj"]
    c = np.zeros_like(h)
    total = 0.0
    for t in range(captions.shape[1] - 1):
        h, c = np_caption_step(model, p["W_embed"][captions[:, t]], h, c)
        target = captions[:, t + 1]
        keep = target != W2I["<NULL>"]
        if not keep.any():
            continue  # only padding left: no loss
        total += np_softmax_loss((h @ p["W_vocab"] + p["b_vocab"])[keep], target[keep]) \
            * keep.sum()
    loss, _ = model.loss(features, captions)
    assert float(loss) == pytest.approx(total / len(captions), rel=1e-12)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_captioning_rnn_sample_is_greedy_decoding_written_in_numpy(cell_type):
    rng = np.random.default_rng(19)
    features = rng.standard_normal((4, 6))
    model = CaptioningRNN(W2I, input_dim=6, wordvec_dim=4, hidden_dim=5, cell_type=cell_type,
                          dtype=np.float64, seed=1)
    perturb_params(model, seed=20)
    model.params["W_embed"] *= 30  # words matter: different inputs, different next words
    p = model.params
    h = features @ p["W_proj"] + p["b_proj"]
    c = np.zeros_like(h)
    word = np.full(4, W2I["<START>"])
    rows = [[] for _ in range(4)]
    for _ in range(7):
        h, c = np_caption_step(model, p["W_embed"][word], h, c)
        word = np.argmax(h @ p["W_vocab"] + p["b_vocab"], axis=1)
        for n in range(4):
            ended = W2I["<END>"] in rows[n]
            rows[n].append(W2I["<NULL>"] if ended else int(word[n]))
    sampled = model.sample(features, max_length=7)
    assert len({tuple(r) for r in rows}) > 1  # the captions differ: a real comparison
    assert sampled.tolist() == rows


# ---------------------------------------------------------------------------------------
# cupy backend (skipped without cupy and a GPU)
# ---------------------------------------------------------------------------------------

def _on_both_backends(build, run):
    """run(build()) on numpy, then on cupy (same seed: weights are drawn on the host)."""
    results = {}
    for name in ("numpy", "cupy"):
        backend.use(name)
        results[name] = run(build())
    backend.use("cupy")
    return results["numpy"], results["cupy"]


# float64 on both sides: only the order of floating-point reductions differs between
# numpy and cuBLAS/cupy kernels, so agreement to ~1e-10 relative is expected.
GPU_RTOL = 1e-9


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["fc_bn", "convnet", "caption_lstm"])
def test_model_loss_and_one_solver_step_match_numpy_on_cupy(cupy_backend, which):
    rng = np.random.default_rng(0)
    if which == "caption_lstm":
        features = rng.standard_normal((3, 6))
        captions = np.array([encode("a cat sits", 6), encode("a dog", 6), encode("dog", 6)])

        def build():
            return CaptioningRNN(W2I, input_dim=6, wordvec_dim=4, hidden_dim=5,
                                 cell_type="lstm", dtype=np.float64, seed=0)

        def run(model):
            loss, grads = model.loss(backend.asarray(features), backend.asarray(captions))
            return float(backend.to_float(loss)), {k: backend.to_numpy(v)
                                                   for k, v in grads.items()}
    else:
        if which == "fc_bn":
            X, y = random_problem(N=20, D=12, C=4)

            def build():
                return FullyConnectedNet([10, 8], input_dim=12, num_classes=4,
                                         normalization="batchnorm", weight_scale=0.3,
                                         dtype=np.float64, seed=0)
        else:
            X, y = image_problem(N=20, shape=(3, 8, 8), C=4)

            def build():
                return ConvNet(input_dim=(3, 8, 8), conv_layers=(4, "pool", 6, "pool"),
                               hidden_dims=(8,), num_classes=4, dtype=np.float64, seed=0)

        def run(model):
            loss, _ = model.loss(backend.asarray(X), backend.asarray(y))
            data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
            solver = Solver(model, data, update_rule="adam", batch_size=10, verbose=False,
                            seed=0)
            solver._step()
            assert all(backend.is_cupy_array(v) == (backend.name() == "cupy")
                       for v in model.params.values())
            return backend.to_float(loss), {k: backend.to_numpy(v)
                                            for k, v in model.params.items()}

    (loss_np, arrays_np), (loss_cp, arrays_cp) = _on_both_backends(build, run)
    assert loss_cp == pytest.approx(loss_np, rel=GPU_RTOL)
    for k in arrays_np:
        np.testing.assert_allclose(arrays_cp[k], arrays_np[k], rtol=GPU_RTOL, atol=1e-12)
