"""Aggregate statistics and stratified bootstrap intervals: hand-computed cases, bootstrap
properties (determinism, stratification, agreement with scipy) and input checks."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmarks.stats import (
    AGGREGATES,
    Interval,
    compare_cells,
    iqm,
    mean,
    median,
    optimality_gap,
    performance_profile,
    performance_profile_ci,
    probability_of_improvement,
    probability_of_improvement_ci,
    resample_indices,
    sample_efficiency_curve,
    score_matrices,
    score_matrix,
    stratified_bootstrap_ci,
    stratified_resample,
)

# 4 runs x 2 tasks. Flattened: 1, 100, 2, 3, 4, -50, 5, 6.
M = np.array([[1.0, 100.0], [2.0, 3.0], [4.0, -50.0], [5.0, 6.0]])


# ----------------------------------------------------------------------------- aggregates


def test_iqm_of_eight_numbers_drops_two_from_each_end():
    # sorted: -50, 1, | 2, 3, 4, 5, | 6, 100 -> floor(0.25 * 8) = 2 cut per side.
    assert iqm(M) == (2 + 3 + 4 + 5) / 4


def test_iqm_of_ten_numbers_drops_floor_of_a_quarter():
    # n = 10: floor(2.5) = 2 cut per side, the middle six 2..7 remain.
    x = np.array([[0.0, 9.0, 2.0, 7.0, 4.0], [5.0, 6.0, 3.0, 8.0, 1.0]])
    assert iqm(x) == pytest.approx((2 + 3 + 4 + 5 + 6 + 7) / 6)


def test_mean_median_and_optimality_gap_by_hand():
    assert mean(M) == (1 + 100 + 2 + 3 + 4 - 50 + 5 + 6) / 8
    # per-task means: (1+2+4+5)/4 = 3, (100+3-50+6)/4 = 14.75; median of two = their mean.
    assert median(M) == (3 + 14.75) / 2
    three = np.array([[1.0, 10.0, 0.0], [3.0, 20.0, 4.0]])  # task means 2, 15, 2
    assert median(three) == 2.0
    # min(score, 1): 0.5, 1, 1, 0 -> mean 0.625 -> gap 0.375.
    assert optimality_gap(np.array([[0.5, 1.5], [1.0, 0.0]])) == 0.375
    assert optimality_gap(np.array([[0.5, 1.5], [1.0, 0.0]]), gamma=2.0) == 2 - 3 / 4


def test_aggregates_reduce_batches_matrix_by_matrix():
    batch = np.stack([M, M + 1.0, 2 * M])
    for statistic in AGGREGATES.values():
        out = statistic(batch)
        assert out.shape == (3,)
        np.testing.assert_allclose(out, [statistic(m) for m in batch])
        assert isinstance(statistic(M), float)


# ----------------------------------------------------------------------------- improvement


def test_probability_of_improvement_two_by_two_with_ties_is_an_exact_fraction():
    # Task 0: x = (1, 2), y = (1, 0): pairs (1,1) tie 1/2, (1,0) win, (2,1) win, (2,0) win
    #   -> 3.5 / 4 = 7/8.
    # Task 1: x = (0, 0), y = (0, 1): each x ties y=0 (1/2) and loses to y=1 -> 1 / 4.
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert probability_of_improvement(x, y) == (7 / 8 + 1 / 4) / 2 == 9 / 16
    assert probability_of_improvement(y, x) == 1 - 9 / 16


def test_probability_of_improvement_is_mann_whitney_u_over_nm():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(5, 3)).astype(float)  # small integers: many ties
    y = rng.integers(0, 4, size=(7, 3)).astype(float)
    per_task = [scipy_stats.mannwhitneyu(x[:, j], y[:, j]).statistic / (5 * 7) for j in range(3)]
    assert probability_of_improvement(x, y) == pytest.approx(np.mean(per_task))


def test_probability_of_improvement_ci():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.5, 1, size=(12, 4)), rng.normal(0, 1, size=(9, 4))
    ci = probability_of_improvement_ci(x, y, reps=500, seed=1)
    assert ci.point == probability_of_improvement(x, y)
    assert 0 <= ci.low <= ci.point <= ci.high <= 1
    assert ci == probability_of_improvement_ci(x, y, reps=500, seed=1)
    assert probability_of_improvement_ci(x, x, reps=50).point == 0.5


# ----------------------------------------------------------------------------- profiles


def test_performance_profile_fractions_by_hand():
    scores = np.array([[0.1, 0.5], [0.9, 0.5]])
    # > 0: all 4; > 0.5: only 0.9 (0.5 is not above 0.5); > 0.95: none; > 0.1: 3 of 4.
    np.testing.assert_array_equal(
        performance_profile(scores, [0.0, 0.5, 0.95, 0.1]), [1.0, 1 / 4, 0.0, 3 / 4]
    )


def test_performance_profile_ci_bands():
    rng = np.random.default_rng(0)
    matrices = {"a": rng.uniform(size=(10, 3)), "b": rng.uniform(0.5, 1.5, size=(6, 3))}
    taus = np.linspace(0, 1.5, 7)
    out = performance_profile_ci(matrices, taus, reps=300)
    for agent, ci in out.items():
        np.testing.assert_array_equal(ci.point, performance_profile(matrices[agent], taus))
        assert ci.low.shape == ci.high.shape == (7,)
        assert np.all(ci.low <= ci.high)
        assert np.all((ci.low >= 0) & (ci.high <= 1))
    # Every uniform(0, 1) score is above 0 and none above 1.5, in every resample.
    assert out["a"].low[0] == out["a"].high[0] == 1.0
    assert out["a"].low[-1] == out["a"].high[-1] == 0.0


# ----------------------------------------------------------------------------- bootstrap


def test_stratified_bootstrap_is_deterministic_for_a_seed_and_contains_the_point():
    rng = np.random.default_rng(0)
    matrices = {"a": rng.normal(size=(10, 5)), "b": rng.normal(2, 1, size=(8, 5))}
    first = stratified_bootstrap_ci(matrices, iqm, reps=500, seed=7)
    assert first == stratified_bootstrap_ci(matrices, iqm, reps=500, seed=7)
    assert first != stratified_bootstrap_ci(matrices, iqm, reps=500, seed=8)
    for agent, ci in first.items():
        assert isinstance(ci, Interval)
        assert ci.point == iqm(matrices[agent])
        assert ci.low < ci.point < ci.high
    # An agent's interval does not depend on the other agents in the mapping.
    assert stratified_bootstrap_ci({"b": matrices["b"]}, iqm, reps=500, seed=7)["b"] == first["b"]


def test_interval_narrows_with_more_runs():
    rng = np.random.default_rng(1)
    few, many = rng.normal(size=(5, 3)), rng.normal(size=(80, 3))
    out = stratified_bootstrap_ci({"few": few, "many": many}, mean, reps=1000)
    width = {agent: ci.high - ci.low for agent, ci in out.items()}
    assert width["many"] < width["few"] / 2  # expected ratio sqrt(80 / 5) = 4


def test_a_wider_confidence_gives_a_wider_interval():
    x = {"a": np.random.default_rng(2).normal(size=(10, 4))}
    narrow = stratified_bootstrap_ci(x, mean, reps=800, confidence=0.5)["a"]
    wide = stratified_bootstrap_ci(x, mean, reps=800, confidence=0.99)["a"]
    assert wide.low < narrow.low < narrow.high < wide.high


def test_resample_indices_stay_within_each_task():
    rng = np.random.default_rng(0)
    # Task j holds values in [10 j, 10 j + 1): disjoint ranges per task.
    scores = np.arange(3)[None, :] * 10.0 + rng.uniform(size=(6, 3))
    idx = resample_indices(np.random.default_rng(1), 400, 6, 3)
    assert idx.shape == (400, 6, 3) and idx.min() == 0 and idx.max() == 5
    resampled = stratified_resample(scores, idx)
    assert resampled.shape == (400, 6, 3)
    for j in range(3):
        assert np.all((resampled[:, :, j] >= 10 * j) & (resampled[:, :, j] < 10 * j + 1))
        assert np.isin(resampled[:, :, j], scores[:, j]).all()
    # With replacement: some replicate repeats a run; per task independently drawn.
    assert any(len(set(r[:, 0])) < 6 for r in resampled)
    assert not np.array_equal(idx[:, :, 0], idx[:, :, 1])


def test_every_bootstrap_replicate_keeps_tasks_apart():
    """A spy statistic sees exactly the batches stratified_bootstrap_ci aggregates."""
    rng = np.random.default_rng(0)
    scores = np.arange(4)[None, :] * 10.0 + rng.uniform(size=(5, 4))
    seen = []

    def spy(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return mean(batch)

    stratified_bootstrap_ci({"a": scores}, spy, reps=300)
    point, *replicates = seen
    np.testing.assert_array_equal(point, scores[None])
    batch = np.concatenate(replicates)
    assert batch.shape == (300, 5, 4)
    for j in range(4):
        assert np.isin(batch[:, :, j], scores[:, j]).all()


def test_curve_resampling_keeps_a_runs_curve_together():
    curves = np.arange(4 * 2)[:, None].reshape(4, 2, 1) * 100.0 + np.arange(5)  # [4, 2, 5]
    out = stratified_resample(curves, resample_indices(np.random.default_rng(0), 50, 4, 2))
    assert out.shape == (50, 4, 2, 5)
    # each resampled curve is one original run's curve of the same task
    for rep in out:
        for i in range(4):
            for j in range(2):
                assert any(np.array_equal(rep[i, j], curves[k, j]) for k in range(4))


def test_batching_of_replicates_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    curves = rng.normal(size=(7, 3, 4))

    def everything():
        return (
            stratified_bootstrap_ci({"x": x}, iqm, reps=301),
            probability_of_improvement_ci(x, y, reps=301),
            performance_profile_ci({"x": x}, [-1.0, 0.0, 1.0], reps=301),
            sample_efficiency_curve({"c": curves}, reps=301),
        )

    def flat(results):
        return np.concatenate([np.ravel(v) for r in results for v in _values(r)])

    whole = flat(everything())
    monkeypatch.setattr("benchmarks.stats._MAX_BATCH_ELEMENTS", 50)  # batches of 1 to 2 reps
    np.testing.assert_array_equal(flat(everything()), whole)


def _values(result):
    return [v for ci in result.values() for v in ci] if isinstance(result, dict) else result


def test_percentile_interval_matches_scipy_bootstrap_on_one_task():
    x = np.random.default_rng(4).normal(size=20)
    ours = stratified_bootstrap_ci({"a": x[:, None]}, mean, reps=20000, seed=0)["a"]
    theirs = scipy_stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=20000,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(1),
    ).confidence_interval
    # Standard error of each end over 20000 replicates is about 0.005 here.
    assert ours.low == pytest.approx(theirs.low, abs=0.025)
    assert ours.high == pytest.approx(theirs.high, abs=0.025)


def test_non_vectorized_statistic():
    x = {"a": np.random.default_rng(5).normal(size=(6, 3))}
    vectorized = stratified_bootstrap_ci(x, iqm, reps=200)
    looped = stratified_bootstrap_ci(
        x, lambda m: scipy_stats.trim_mean(m.ravel(), 0.25), reps=200, vectorized=False
    )
    assert looped["a"].point == pytest.approx(vectorized["a"].point)
    assert looped["a"].low == pytest.approx(vectorized["a"].low)
    assert looped["a"].high == pytest.approx(vectorized["a"].high)
    with pytest.raises(ValueError, match="vectorized=False"):
        stratified_bootstrap_ci(x, lambda m: float(np.mean(m)), reps=10)


def test_partial_statistic_and_single_run():
    x = {"a": np.array([[0.2, 3.0]])}
    ci = stratified_bootstrap_ci(x, functools.partial(optimality_gap, gamma=1.0), reps=20)
    # One run: every resample is the matrix itself.
    assert ci["a"] == Interval(0.4, 0.4, 0.4)


# ----------------------------------------------------------------------------- curves


def test_sample_efficiency_curve():
    rng = np.random.default_rng(6)
    curves = {"a": rng.normal(size=(8, 3, 4)), "b": np.ones((3, 3, 6))}
    out = sample_efficiency_curve(curves, reps=300)
    a = out["a"]
    np.testing.assert_allclose(a.point, [iqm(curves["a"][:, :, p]) for p in range(4)])
    assert a.low.shape == a.high.shape == (4,)
    assert np.all(a.low <= a.high) and np.all(a.low < a.high)
    # Identical runs: zero-width bands.
    np.testing.assert_array_equal(out["b"].low, np.ones(6))
    np.testing.assert_array_equal(out["b"].high, np.ones(6))
    # Whole runs are resampled with the same indices a matrix gets from the same seed, so
    # each point's band is that point's own stratified bootstrap interval.
    for p in range(4):
        alone = stratified_bootstrap_ci({"a": curves["a"][:, :, p]}, iqm, reps=300)["a"]
        assert alone == pytest.approx((a.point[p], a.low[p], a.high[p]))
    looped = sample_efficiency_curve(
        {"a": curves["a"]}, lambda m: float(np.mean(m)), reps=50, vectorized=False
    )["a"]
    np.testing.assert_allclose(looped.point, curves["a"].mean(axis=(0, 1)))


# ----------------------------------------------------------------------------- cells


def test_compare_cells_welch_by_hand_and_against_scipy():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0]
    # means 2 and 3; variances 1 and 2; s_a^2/n_a = 1/3, s_b^2/n_b = 1; se = sqrt(4/3);
    # df = (4/3)^2 / ((1/3)^2 / 2 + 1^2 / 1) = (16/9) / (19/18) = 32/19.
    diff, low, high = compare_cells(a, b)
    half = scipy_stats.t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert diff == -1.0
    assert (low, high) == pytest.approx((-1 - half, -1 + half))
    result = scipy_stats.ttest_ind(a, b, equal_var=False)
    reference = result.confidence_interval(confidence_level=0.9)
    assert compare_cells(a, b, 0.9)[1:] == pytest.approx((reference.low, reference.high))


def test_compare_cells_degenerate_cases():
    assert compare_cells([1.0, 2.0], [1.5]).point == 0.0
    assert all(math.isnan(v) for v in compare_cells([1.0, 2.0], [1.5])[1:])
    assert all(math.isnan(v) for v in compare_cells([], [1.0, 2.0]))
    assert compare_cells([1.0, 1.0], [0.5, 0.5, 0.5]) == Interval(0.5, 0.5, 0.5)


# ----------------------------------------------------------------------------- matrices


def test_score_matrix_builds_validates_and_truncates():
    matrix, tasks = score_matrix({"t1": [1, 2], "t2": [3, 4]})
    np.testing.assert_array_equal(matrix, [[1, 3], [2, 4]])
    assert tasks == ["t1", "t2"]
    uneven = {"t1": [1, 2, 3], "t2": [4, 5]}
    with pytest.raises(ValueError, match="unequal numbers of runs"):
        score_matrix(uneven)
    np.testing.assert_array_equal(score_matrix(uneven, "min")[0], [[1, 4], [2, 5]])
    np.testing.assert_array_equal(score_matrix(uneven, 1)[0], [[1, 4]])
    with pytest.raises(ValueError, match="fewer values"):
        score_matrix(uneven, 3)
    with pytest.raises(ValueError, match="None"):
        score_matrix({"t1": [1, None]})
    with pytest.raises(ValueError, match="finite"):
        score_matrix({"t1": [1, float("nan")]}, name="agent x")
    with pytest.raises(ValueError, match="runs must be"):
        score_matrix(uneven, "all")


def test_score_matrices_share_the_task_order():
    matrices, tasks = score_matrices(
        {"a": {"t1": [1, 2], "t2": [3, 4]}, "b": {"t2": [30], "t1": [10]}}
    )
    assert tasks == ["t1", "t2"]
    np.testing.assert_array_equal(matrices["b"], [[10, 30]])
    with pytest.raises(ValueError, match=r"scores\['b'\] has tasks"):
        score_matrices({"a": {"t1": [1]}, "b": {"t2": [1]}})


# ----------------------------------------------------------------------------- bad input


GOOD = np.ones((3, 2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: iqm(np.ones(3)), r"at least 2 axes.*shape \(3,\)"),
        (lambda: iqm(np.ones((0, 2))), "must not be empty"),
        (lambda: mean(np.array([[1.0, np.nan]])), r"finite.*1 non-finite.*index \(0, 1\)"),
        (lambda: stratified_bootstrap_ci({}, iqm), "at least one agent"),
        (lambda: stratified_bootstrap_ci({"a": np.ones(3)}, iqm), r"matrices\['a'\].*2-D"),
        (
            lambda: stratified_bootstrap_ci({"a": GOOD, "b": np.ones((3, 3))}, iqm),
            r"matrices\['b'\] has 3 tasks",
        ),
        (
            lambda: stratified_bootstrap_ci({"a": np.array([[np.inf]])}, iqm),
            r"matrices\['a'\] must be finite",
        ),
        (lambda: stratified_bootstrap_ci({"a": GOOD}, iqm, reps=0), "reps must be.*got 0"),
        (lambda: stratified_bootstrap_ci({"a": GOOD}, iqm, reps=2.5), "reps must be"),
        (lambda: stratified_bootstrap_ci({"a": GOOD}, iqm, confidence=1.0), r"\(0, 1\).*1.0"),
        (lambda: stratified_bootstrap_ci({"a": GOOD}, iqm, seed=-1), "seed must be"),
        (lambda: probability_of_improvement(GOOD, np.ones((3, 3))), "same tasks"),
        (lambda: probability_of_improvement_ci(GOOD, GOOD, confidence=0), r"\(0, 1\)"),
        (lambda: performance_profile(GOOD, []), "taus must be"),
        (lambda: performance_profile(GOOD, [[0.5]]), "taus must be"),
        (lambda: performance_profile_ci({"a": GOOD}, [np.nan]), "non-finite"),
        (lambda: sample_efficiency_curve({"a": GOOD}), r"curves\['a'\].*3-D"),
        (
            lambda: sample_efficiency_curve({"a": np.ones((2, 2, 3)), "b": np.ones((2, 1, 3))}),
            r"curves\['b'\] has 1 tasks",
        ),
        (lambda: compare_cells([[1.0]], [1.0]), "a_values must be a 1-D"),
        (lambda: compare_cells([1.0, np.nan], [1.0]), "a_values must be finite"),
        (lambda: compare_cells([1.0], [1.0], confidence=95), r"\(0, 1\)"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- verdicts


def test_holm_adjusts_rejects_and_levels_by_hand():
    from benchmarks.stats import holm

    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06).
    out = holm([0.01, 0.04, 0.03, 0.005])
    assert out.adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert out.reject == [True, False, False, True]
    # The step-down stops at rank 3 (0.03 >= 0.05 / 2): ranks 3 and 4 share its level.
    assert out.levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2, 1 - 0.05 / 4])
    # A p-value below its own threshold (0.04 < 0.05 / 1) is not rejected after a stop.
    two = holm([0.03, 0.04])
    assert two.adjusted == pytest.approx([0.06, 0.06]) and two.reject == [False, False]
    # NaN is not tested: the family is the finite p-values only.
    with_nan = holm([0.01, float("nan")])
    assert with_nan.adjusted[0] == pytest.approx(0.01) and math.isnan(with_nan.adjusted[1])
    assert with_nan.reject == [True, False]


def test_difference_test_matches_scipy_welch_and_paired():
    from benchmarks.stats import difference_test, t_interval

    a, b = [0.1, 0.5, 0.2, 0.9, 0.4], [0.0, -0.3, 0.2, 0.1, -0.1]
    welch = difference_test(a, b)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert welch.p == pytest.approx(reference.pvalue, rel=1e-12)
    assert t_interval(welch, 0.95) == pytest.approx(tuple(reference.confidence_interval(0.95)))
    assert compare_cells(a, b)[1:] == pytest.approx(t_interval(welch, 0.95))
    paired = difference_test(a, b, paired=True)
    assert paired.p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert paired.df == 4
    assert difference_test([1.0, 1.0], [1.0, 1.0]).p == 1.0
    assert difference_test([2.0, 2.0], [1.0, 1.0]).p == 0.0
    assert math.isnan(difference_test([1.0], [1.0, 2.0]).p)


def test_tost_by_hand_with_two_degrees_of_freedom():
    from benchmarks.stats import tost

    # a = 1, 2, 3 (variance 1), b = 0, 0, 0: diff 2, se = sqrt(1/3), Welch df = 2, whose t
    # distribution has cdf(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    def cdf(t: float) -> float:
        return 0.5 + t / (2 * math.sqrt(2 + t * t))

    se = math.sqrt(1 / 3)
    wide = tost([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], margin=5.0)
    assert wide.p == pytest.approx(cdf(-3 / se))  # the upper test: 0.0175
    assert wide.p == pytest.approx(0.5 - 3 * math.sqrt(3) / (2 * math.sqrt(29)))
    narrow = tost([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], margin=3.0)
    assert narrow.p == pytest.approx(0.5 - math.sqrt(3) / (2 * math.sqrt(5)))  # 0.1127
    # The 90% interval: t_{0.95, 2} = 0.9 / sqrt(0.095).
    half = 0.9 / math.sqrt(0.095) * se
    assert (wide.low, wide.high) == pytest.approx((2 - half, 2 + half))
    assert wide.low > -5 and wide.high < 5 and narrow.high > 3  # inside / outside the margin


def test_tost_matches_two_shifted_one_sided_scipy_tests():
    from benchmarks.stats import tost

    a, b, margin = [1.0, 1.2, 0.9, 1.1, 1.05], [1.02, 0.98, 1.1, 0.95, 1.0], 0.15
    lower = scipy_stats.ttest_ind(np.add(a, margin), b, equal_var=False, alternative="greater")
    upper = scipy_stats.ttest_ind(np.subtract(a, margin), b, equal_var=False, alternative="less")
    assert tost(a, b, margin).p == pytest.approx(max(lower.pvalue, upper.pvalue), rel=1e-10)
    lower = scipy_stats.ttest_rel(np.add(a, margin), b, alternative="greater")
    upper = scipy_stats.ttest_rel(np.subtract(a, margin), b, alternative="less")
    assert tost(a, b, margin, paired=True).p == pytest.approx(
        max(lower.pvalue, upper.pvalue), rel=1e-10
    )


def test_verdict_follows_the_interval_then_the_equivalence_test():
    from benchmarks.stats import verdict

    assert verdict(0.1, 0.3, False) == "win"
    assert verdict(0.1, 0.3, True) == "win"  # a small but established difference
    assert verdict(-0.3, -0.1, False) == "loss"
    assert verdict(-0.3, -0.1, False, higher_is_better=False) == "win"
    assert verdict(-0.1, 0.1, True) == "equivalent"
    assert verdict(-0.1, 0.1, False) == "inconclusive"
    assert verdict(float("nan"), float("nan"), False) == "inconclusive"


def test_compare_family_corrects_both_tests_within_the_family():
    from benchmarks.stats import compare_family, difference_test, holm, t_interval, tost

    rng = np.random.default_rng(3)
    pairs = [
        (rng.normal(1.0, 0.1, 5), rng.normal(0.0, 0.1, 5)),  # clear win
        (rng.normal(0.0, 0.1, 5), rng.normal(0.0, 0.1, 5)),
        (rng.normal(0.0, 0.01, 5), rng.normal(0.0, 0.01, 5)),  # tight: equivalent
        (rng.normal(0.1, 0.1, 5), rng.normal(0.0, 0.1, 5)),
    ]
    margins = [0.05, 0.05, 0.05, float("nan")]
    out = compare_family(pairs, margins)
    raw = [difference_test(a, b) for a, b in pairs]
    corrected = holm([t.p for t in raw])
    tosts = holm([tost(a, b, 0.05).p for a, b in pairs[:3]] + [float("nan")])
    for i, c in enumerate(out):
        assert c.p_holm == pytest.approx(corrected.adjusted[i])
        assert (c.low, c.high) == pytest.approx(t_interval(raw[i], corrected.levels[i]))
        # The corrected interval excludes 0 exactly when Holm rejects.
        assert (c.low > 0 or c.high < 0) == corrected.reject[i]
    assert [c.verdict for c in out][:1] == ["win"]
    assert out[2].verdict == "equivalent" and tosts.reject[2]
    assert math.isnan(out[3].p_tost) and out[3].verdict in ("win", "inconclusive")
    losses = compare_family([(b, a) for a, b in pairs], margins)
    assert losses[0].verdict == "loss"
    assert compare_family([([1.0], [2.0, 3.0])])[0].verdict == ""


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ("holm([0.5, 1.5])", r"p_values\[1\] must be in \[0, 1\].*1.5"),
        ("holm([0.5], alpha=0)", r"alpha must be in \(0, 1\).*0"),
        ("tost([1.0, 2.0], [1.0, 2.0], margin=0)", "margin must be a positive.*0"),
        ("tost([1.0, 2.0], [1.0, 2.0], margin=1, alpha=0.6)", r"\(0, 0.5\).*0.6"),
        ("difference_test([1.0, 2.0], [1.0], paired=True)", "same number of seeds.*2 and 1"),
        ("compare_family([([1.0], [1.0])], margins=[])", "one value per pair"),
    ],
)
def test_verdict_functions_reject_bad_input(call, match):
    from benchmarks import stats

    with pytest.raises(ValueError, match=match):
        eval(call, vars(stats))
