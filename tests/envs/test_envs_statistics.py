"""Statistical and closed-form properties of the tasks, heads, noise and token codec.

Every test is deterministic (fixed ``data_seed``) and its tolerance is a few standard errors
of the estimate it checks, so a misconfigured noise level, head or codec fails it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import maxrl_envs
from maxrl_envs import ClassificationCore, Contexts, RegressionCore, TokenCodec
from maxrl_envs.core import SPLITS
from maxrl_envs.noise import heteroscedastic_scales

POOL = {"num_contexts": 16384, "num_test_contexts": 4096}  # 20,480 contexts in all


def pooled(core) -> Contexts:
    """Contexts of every split (regression signals are standardized over all of them)."""
    splits = [core.all_contexts(name) for name in SPLITS]
    fields = ("ids", "obs", "signal", "target", "noise_scale")
    return Contexts(*(torch.cat([getattr(part, f) for part in splits]) for f in fields))


def noise_of(core) -> np.ndarray:
    ctx = pooled(core)
    return (ctx.target.double() - ctx.signal.double()).numpy()


# -- signal-to-noise ratio -----------------------------------------------------------------


@pytest.mark.parametrize("noise", ["gaussian", "laplace"])
@pytest.mark.parametrize("snr", [10.0, 1.0, 0.1, 0.01])
def test_measured_snr_matches_configured(snr, noise):
    core = RegressionCore(task="teacher-mlp", snr=snr, noise=noise, data_seed=3, **POOL)
    ctx = pooled(core)
    eps = noise_of(core)
    measured = ctx.signal.double().var().item() / eps.var()
    # Standard error of a variance estimate: sqrt((kurtosis - 1) / n) = 1.0% (Gaussian) and
    # 1.6% (Laplace) here; 6% is about 4 standard errors.
    assert measured == pytest.approx(snr, rel=0.06)
    # The family's shape: E|e| / std is sqrt(2 / pi) = 0.798 (Gaussian), 1 / sqrt(2) (Laplace).
    shape = np.abs(eps).mean() / eps.std()
    expected = math.sqrt(2 / math.pi) if noise == "gaussian" else 1 / math.sqrt(2)
    assert shape == pytest.approx(expected, abs=0.015)


def test_student_t_noise_scale_robust_and_variance():
    snr = 1.0
    # df = 3 has no finite fourth moment, so compare a quantile: the median of |e| of a
    # unit-variance t_3 is t.ppf(0.75, 3) * sqrt(1 / 3).
    core = RegressionCore(
        task="teacher-mlp", snr=snr, noise="student-t", student_df=3.0, data_seed=4, **POOL
    )
    eps = noise_of(core)
    expected_mad = stats.t.ppf(0.75, 3) * math.sqrt(1 / 3) / math.sqrt(snr)
    assert np.median(np.abs(eps)) == pytest.approx(expected_mad, rel=0.04)
    # A Gaussian of the same variance has a clearly larger median |e| (0.674 vs 0.442).
    assert abs(stats.norm.ppf(0.75) - expected_mad) > 0.2
    # With more degrees of freedom the variance estimate is reliable again.
    core = RegressionCore(
        task="teacher-mlp", snr=0.1, noise="student-t", student_df=30.0, data_seed=4, **POOL
    )
    eps = noise_of(core)
    assert pooled(core).signal.double().var().item() / eps.var() == pytest.approx(0.1, rel=0.07)


def test_heteroscedastic_noise_keeps_the_snr():
    core = maxrl_envs.make_task("MaxRLRegressionHetero-v0", **POOL).core
    ctx = pooled(core)
    # Per-context scales have a mean square of the base variance 1 / snr under the input
    # distribution (up to sampling error over the pool) ...
    assert (ctx.noise_scale.double() ** 2).mean().item() == pytest.approx(1 / core.snr, rel=0.03)
    # ... so the measured SNR over the pool is the configured one.
    measured = ctx.signal.double().var().item() / noise_of(core).var()
    assert measured == pytest.approx(core.snr, rel=0.1)


@pytest.mark.parametrize("decades", [0.5, 2.0, 6.0, 12.0])
def test_heteroscedastic_normalization_is_exact_for_uniform_difficulty(decades):
    # Difficulty is uniform on [0, 1] under the inputs; a fine midpoint grid integrates the
    # mean square multiplier, which the closed-form constant makes exactly 1.
    u = (np.arange(200_000) + 0.5) / 200_000
    scales = heteroscedastic_scales(u, decades)
    assert np.mean(scales**2) == pytest.approx(1.0, rel=1e-6)
    assert np.log10(scales.max() / scales.min()) == pytest.approx(decades, rel=1e-4)


def test_pool_sizes_do_not_change_the_function_or_other_pools():
    small = RegressionCore(task="teacher-mlp", num_contexts=100, num_test_contexts=50, data_seed=3)
    large = RegressionCore(task="teacher-mlp", num_contexts=300, num_test_contexts=80, data_seed=3)
    for split, n in [("train", 100), ("test", 50), ("validation", 512)]:
        a, b = small.all_contexts(split), large.all_contexts(split)
        for field in ("obs", "signal", "target", "noise_scale"):
            assert torch.equal(getattr(a, field), getattr(b, field)[:n]), (split, field)
    few = ClassificationCore(task="teacher-mlp", num_test_contexts=10, data_seed=3)
    many = ClassificationCore(task="teacher-mlp", num_test_contexts=20, data_seed=3)
    assert torch.equal(few.all_contexts("train").signal, many.all_contexts("train").signal)


# -- likelihood heads ----------------------------------------------------------------------


@pytest.mark.parametrize("head, density", [("gaussian", stats.norm), ("laplace", stats.laplace)])
def test_head_matches_its_density(head, density):
    scale = 0.7
    core = RegressionCore(head=head, head_scale=scale, snr=1.0, data_seed=1)
    ctx = core.all_contexts("test")
    offsets = torch.linspace(-3.0, 3.0, 13)
    scores = core.score(ctx, ctx.target[:, None] + offsets)
    y = ctx.target.double().numpy()[:, None]
    yhat = scores.prediction.double().numpy()
    log_density = density.logpdf(y, loc=yhat, scale=scale)
    np.testing.assert_allclose(scores.log_likelihood.numpy(), log_density, rtol=1e-5, atol=1e-5)
    # The reward is the likelihood rescaled to a ceiling of 1: density / density at its mode.
    ceiling = density.pdf(0.0, loc=0.0, scale=scale)
    reward = scores.reward.double().numpy()
    np.testing.assert_allclose(reward, np.exp(log_density) / ceiling, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(scores.log_reward.numpy(), np.log(reward), rtol=1e-5, atol=1e-6)
    assert (reward <= 1.0).all()
    # Exactly 1 at prediction = target, and nowhere else on this grid.
    at_target = core.score(ctx, ctx.target[:, None])
    assert (at_target.reward == 1.0).all() and (at_target.log_reward == 0.0).all()
    assert (reward[:, offsets != 0] < 1.0).all()
    np.testing.assert_allclose(scores.squared_error.numpy(), (yhat - y) ** 2, rtol=1e-6)


def test_head_log_reward_does_not_underflow():
    core = RegressionCore(head="gaussian", head_scale=0.01, snr=1.0, data_seed=1)
    ctx = core.all_contexts("test")
    scores = core.score(ctx, ctx.target[:, None] + 3.0)
    assert (scores.reward == 0).all()  # exp(-45000) underflows ...
    np.testing.assert_allclose(scores.log_reward.numpy(), -0.5 * (3.0 / 0.01) ** 2, rtol=1e-4)


def tolerance_rule(target: torch.Tensor, prediction: torch.Tensor, scale: float) -> np.ndarray:
    """|y - yhat| <= s on the exact values (float32 inputs widened, float64 scale)."""
    y = target.numpy().astype(np.float64)[:, None]
    return np.abs(prediction.numpy().astype(np.float64) - y) <= scale


@pytest.mark.parametrize("scale", [0.3, 0.5, 1.0 / 3.0])
def test_verifier_is_exactly_the_tolerance_rule(scale):
    core = RegressionCore(head="verifier", head_scale=scale, snr=1.0, data_seed=2)
    ctx = core.all_contexts("test")
    y = ctx.target.numpy()
    # Predictions within a few float32 ulps of both boundaries y - s and y + s, plus random ones.
    columns = []
    for sign in (-1.0, 1.0):
        edge = (y.astype(np.float64) + sign * scale).astype(np.float32)
        for _ in range(4):
            edge = np.nextafter(edge, np.float32(-np.inf))
        for _ in range(9):
            columns.append(edge.copy())
            edge = np.nextafter(edge, np.float32(np.inf))
    rng = np.random.default_rng(0)
    columns += list(rng.uniform(-4, 4, size=(8, len(y))).astype(np.float32))
    prediction = torch.as_tensor(np.stack(columns, axis=1))
    scores = core.score(ctx, prediction)
    rule = tolerance_rule(ctx.target, prediction, scale)
    near = rule[:, :18]
    assert near.any() and not near.all()  # the boundary really is crossed
    np.testing.assert_array_equal(scores.is_success.numpy(), rule)
    np.testing.assert_array_equal(scores.reward.numpy(), rule.astype(np.float32))
    np.testing.assert_array_equal(scores.log_likelihood.numpy(), np.where(rule, 0.0, -100.0))


def test_verifier_boundary_is_inclusive():
    core = RegressionCore(head="verifier", head_scale=0.5)
    ctx = Contexts(
        ids=torch.zeros(1, dtype=torch.long),
        obs=torch.zeros(1, core.obs_dim),
        signal=torch.zeros(1),
        target=torch.tensor([0.25]),
        noise_scale=torch.ones(1),
    )
    below = np.nextafter(np.float32(-0.25), np.float32(-1))
    above = np.nextafter(np.float32(0.75), np.float32(1))
    prediction = torch.tensor([[0.75, float(above), -0.25, float(below), 0.25]])
    success = core.score(ctx, prediction).is_success[0].tolist()
    assert success == [True, False, True, False, True]
    # The Gaussian and Laplace heads report the same success rule.
    for head in ("gaussian", "laplace"):
        other = RegressionCore(head=head, head_scale=0.5)
        assert other.score(ctx, prediction).is_success[0].tolist() == success


# -- heteroscedastic difficulty --------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["MaxRLRegressionHetero-v0", "MaxRLVerifierHetero-v0"])
def test_heteroscedastic_contexts_differ_in_difficulty(env_id):
    core = maxrl_envs.make_task(env_id).core
    ctx = pooled(core)
    scales = ctx.noise_scale.double().numpy()
    span = math.log10(scales.max() / scales.min())
    assert 0.95 * core.heteroscedastic <= span <= core.heteroscedastic + 1e-6
    # The Bayes-optimal prediction is the clean signal; score it per context.
    scores = core.score(ctx, ctx.signal[:, None])
    order = np.argsort(scales)
    decile = len(order) // 10
    easy, hard = order[:decile], order[-decile:]
    reward = scores.reward[:, 0].double().numpy()
    success = scores.is_success[:, 0].double().numpy()
    assert reward[easy].mean() > 0.95 and reward[hard].mean() < 0.5
    assert success[easy].mean() > 0.95 and success[hard].mean() < 0.5
    if core.head == "gaussian":
        # E exp(-e^2 / (2 s^2)) = s / sqrt(s^2 + sigma^2) for Gaussian noise of std sigma.
        expected = core.head_scale / np.sqrt(core.head_scale**2 + scales**2)
        assert reward[hard].mean() == pytest.approx(expected[hard].mean(), abs=0.05)
    # A homogeneous task has one noise scale.
    flat = maxrl_envs.make_task(env_id, heteroscedastic=0.0).core.all_contexts("train")
    assert (flat.noise_scale == flat.noise_scale[0]).all()


# -- label noise ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 0.9])
def test_label_noise_rate_and_never_the_same_label(rate):
    # Two classes: a corruption that could redraw the clean label would change only half.
    core = ClassificationCore(task="teacher-mlp", num_classes=2, label_noise=rate, **POOL)
    ctx = pooled(core)
    changed = (ctx.target != ctx.signal).double().mean().item()
    n = ctx.target.numel()
    assert abs(changed - rate) <= 5 * math.sqrt(rate * (1 - rate) / n) + 1e-12
    assert (ctx.noise_scale == np.float32(rate)).all()


def test_label_noise_spreads_over_the_other_classes():
    k, rate = 10, 0.3
    core = ClassificationCore(task="teacher-mlp", num_classes=k, label_noise=rate, **POOL)
    ctx = pooled(core)
    shift = ((ctx.target - ctx.signal) % k).numpy()
    flipped = shift[shift != 0]
    assert abs(len(flipped) / len(shift) - rate) < 0.015
    counts = np.bincount(flipped, minlength=k)[1:]
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    assert chi2 < stats.chi2.ppf(0.999, k - 2)
    # The env reports the observed label as the target and rewards only it.
    labels = maxrl_envs.make_task("MaxRLClassification-v0", label_noise=rate).core
    test = labels.all_contexts("test")
    scores = labels.score(test, torch.stack([test.target, test.signal], 1))
    assert scores.reward[:, 0].all()
    assert (scores.reward[:, 1] == (test.signal == test.target).float()).all()


# -- token codec ---------------------------------------------------------------------------


def all_token_sequences(codec: TokenCodec) -> torch.Tensor:
    n = torch.arange(codec.levels)
    powers = [codec.base**k for k in range(codec.num_digits - 1, -1, -1)]
    return torch.stack([(n // p) % codec.base for p in powers], dim=-1)


@pytest.mark.parametrize(
    "base, num_digits, prediction_range",
    [(10, 3, 4.0), (2, 12, 1.0), (7, 4, 2.5), (10, 6, 4.0), (1024, 2, 100.0)],
)
def test_codec_round_trips_on_the_grid(base, num_digits, prediction_range):
    codec = TokenCodec(num_digits=num_digits, base=base, prediction_range=prediction_range)
    tokens = all_token_sequences(codec)
    values = codec.decode(tokens)
    assert values.dtype == torch.float32
    np.testing.assert_array_equal(codec.encode(values).numpy(), tokens.numpy())
    # Grid points -R + 2 R n / (L - 1), in order, with exact endpoints.
    grid = -prediction_range + 2 * prediction_range * np.arange(codec.levels) / (codec.levels - 1)
    np.testing.assert_allclose(values.numpy(), grid, rtol=1e-6, atol=1e-6 * prediction_range)
    assert values[0] == -prediction_range and values[-1] == prediction_range
    assert (values[1:] > values[:-1]).all()


def test_codec_encodes_to_the_nearest_grid_point_and_clips():
    codec = TokenCodec(num_digits=3, base=10, prediction_range=4.0)
    prediction = torch.linspace(-4.0, 4.0, 100_001)
    decoded = codec.decode(codec.encode(prediction))
    step = 8.0 / (codec.levels - 1)
    assert (decoded - prediction).abs().max() <= step / 2 + 1e-6
    outside = codec.encode(torch.tensor([-9.0, 9.0]))
    assert outside.tolist() == [[0, 0, 0], [9, 9, 9]]


def test_codec_round_trips_at_the_largest_grid():
    codec = TokenCodec(num_digits=6, base=16)  # 2^24 levels, the largest allowed
    n = torch.randint(0, codec.levels, (200_000,), generator=torch.Generator().manual_seed(0))
    n = torch.cat([n, torch.tensor([0, 1, codec.levels - 2, codec.levels - 1])])
    tokens = torch.stack([(n // 16**p) % 16 for p in range(5, -1, -1)], dim=-1)
    np.testing.assert_array_equal(codec.encode(codec.decode(tokens)).numpy(), tokens.numpy())
    with pytest.raises(ValueError, match="base=10 and num_digits=8"):
        TokenCodec(num_digits=8, base=10)


def test_codec_step_features():
    codec = TokenCodec(num_digits=3, base=4)
    written = torch.tensor([[2, 1, 3]])
    expected = {
        0: [1, 0, 0] + [0] * 12,
        2: [0, 0, 1] + [0, 0, 1, 0] + [0, 1, 0, 0] + [0] * 4,
        3: [0, 0, 0] + [0, 0, 1, 0] + [0, 1, 0, 0] + [0, 0, 0, 1],
    }
    for position, features in expected.items():
        assert codec.step_features(written, position)[0].tolist() == features
