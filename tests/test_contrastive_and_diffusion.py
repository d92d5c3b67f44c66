"""Contrastive losses against loop formulas and numerical gradients; the DDPM schedule,
closed-form noising and sampler against what they must do."""
import math

import numpy as np
import pytest

from course_utils.contrastive import clip_loss, nt_xent_loss
from course_utils.diffusion import linear_schedule, noise_loss, p_sample_step, q_sample
from course_utils.gradient_check import eval_numerical_gradient, rel_error

rng = np.random.default_rng(2020)
GRAD_TOL = 1e-7  # central differences: ~1e-11 absolute, ~1e-7 relative on small entries


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _nt_xent_by_loops(z, tau):
    M = len(z)
    total = 0.0
    for i in range(M):
        partner = (i + M // 2) % M
        others = [math.exp(_cos(z[i], z[k]) / tau) for k in range(M) if k != i]
        total += -math.log(math.exp(_cos(z[i], z[partner]) / tau) / sum(others))
    return total / M


def test_nt_xent_matches_its_formula_and_gradient():
    z = rng.standard_normal((6, 4))
    for tau in (0.1, 0.5, 2.0):
        loss, dz = nt_xent_loss(z, tau)
        assert loss == pytest.approx(_nt_xent_by_loops(z.tolist(), tau), rel=1e-12)
        num = eval_numerical_gradient(lambda w: nt_xent_loss(w, tau)[0], z.copy(), verbose=False)
        assert rel_error(dz, num) < GRAD_TOL


def test_nt_xent_is_low_when_the_views_agree_and_ignores_the_scale_of_embeddings():
    a = rng.standard_normal((4, 8))
    agree = np.vstack([a, 3 * a + 0.01 * rng.standard_normal((4, 8))])
    disagree = np.vstack([a, rng.standard_normal((4, 8))])
    assert nt_xent_loss(agree, 0.1)[0] < 0.1 < nt_xent_loss(disagree, 0.1)[0]
    assert nt_xent_loss(5 * disagree, 0.1)[0] == pytest.approx(nt_xent_loss(disagree, 0.1)[0])
    with pytest.raises(ValueError, match="2N, D"):
        nt_xent_loss(rng.standard_normal((5, 3)))


def test_clip_loss_matches_its_formula_and_gradients():
    img, txt, tau = rng.standard_normal((4, 5)), rng.standard_normal((4, 5)), 0.3
    loss, dimg, dtxt = clip_loss(img, txt, tau)
    il, tl = img.tolist(), txt.tolist()
    logits = [[_cos(il[i], tl[j]) / tau for j in range(4)] for i in range(4)]
    by_image = -sum(logits[i][i] - math.log(sum(math.exp(v) for v in logits[i]))
                    for i in range(4)) / 4
    by_text = -sum(logits[j][j] - math.log(sum(math.exp(logits[i][j]) for i in range(4)))
                   for j in range(4)) / 4
    assert loss == pytest.approx((by_image + by_text) / 2, rel=1e-12)
    assert rel_error(dimg, eval_numerical_gradient(lambda w: clip_loss(w, txt, tau)[0],
                                                   img.copy(), verbose=False)) < GRAD_TOL
    assert rel_error(dtxt, eval_numerical_gradient(lambda w: clip_loss(img, w, tau)[0],
                                                   txt.copy(), verbose=False)) < GRAD_TOL


def test_the_schedule_is_linear_and_alpha_bar_is_the_running_product():
    s = linear_schedule(10, 1e-3, 0.2)
    assert s["betas"][0] == pytest.approx(1e-3) and s["betas"][-1] == pytest.approx(0.2)
    assert np.allclose(np.diff(s["betas"]), (0.2 - 1e-3) / 9)
    assert s["alpha_bars"][3] == pytest.approx(math.prod(1 - b for b in s["betas"][:4]))
    with pytest.raises(ValueError, match="beta_1"):
        linear_schedule(10, 0.5, 0.1)


def test_q_sample_has_the_closed_form_mean_and_variance():
    s = linear_schedule(100)
    x0 = np.full((20000, 1), 2.0)
    t = np.full(20000, 60)
    xt = q_sample(x0, t, rng.standard_normal(x0.shape), s)
    abar = s["alpha_bars"][59]
    assert xt.mean() == pytest.approx(2.0 * math.sqrt(abar), abs=0.03)   # 4 standard errors
    assert xt.var() == pytest.approx(1 - abar, rel=0.05)
    loss, dgrad = noise_loss(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    assert loss == 2.5 and dgrad.tolist() == [[1.0, 2.0]]


def test_the_sampler_with_the_exact_noise_brings_pure_noise_back_to_the_data_point():
    """For data that is one point x0, the best noise prediction is known in closed form:
    eps_hat = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t). Run with it, the sampler must end
    at x0 from any start; with a wrong sign in its mean it does not."""
    s = linear_schedule(200, 1e-4, 0.05)
    x0 = np.array([[1.5, -0.5]])
    x = rng.standard_normal((500, 2))
    for t in range(200, 0, -1):
        abar = s["alpha_bars"][t - 1]
        eps_hat = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
        x = p_sample_step(x, t, eps_hat, s, rng.standard_normal(x.shape))
    assert np.abs(x - x0).max() < 1e-6
