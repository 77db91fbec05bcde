"""Results without early stopping: a run's metrics at its last evaluation (its curve's last
point) read in one place, in the summary tables (``--checkpoint last``), the claims
(``checkpoint = "last"``) and the report's section "Without early stopping"."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from testrows import final_row

from benchmarks.claims import ClaimError, load_claims
from benchmarks.claims import main as claims_main
from benchmarks.report import ResultRow, build_report, rows_at_checkpoint
from benchmarks.report.tables import last_is_worse
from benchmarks.results import append_row
from benchmarks.summary import main, pivot, verdicts

LL = "eval/log_likelihood"
REFS = {"random": {LL: -5.0}, "bayes_point": {LL: -1.0}, "bayes_sampler": {LL: -1.0}}


def row(agent: str, seed: int, selected: float, last: float | None) -> dict:
    """A final row selected at 100 rollouts (``selected``), last evaluated at 200 (``last``);
    ``last=None``: a row without a curve."""
    curve = [[0, {LL: -5.0}], [100, {LL: selected}], [200, {LL: last}]]
    return final_row(
        agent,
        seed,
        select_metric=LL,
        columns=[LL],
        config={"seed": seed},
        references=REFS,
        metrics={LL: selected, "rollouts": 200, "selected_rollouts": 100},
        curve=curve if last is not None else [],
    )


def write_rows(folder: Path) -> Path:
    """maxrl degrades after its selected checkpoint (-0.99 -> -2.99 on average); grpo keeps
    its value (one seed's last value off by float32 rounding only)."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(3):
        append_row(folder / "results.jsonl", row("maxrl", s, -1.0 + 0.01 * s, -3.0 + 0.01 * s))
        noise = -5e-8 if s == 0 else 0.0
        append_row(
            folder / "results.jsonl", row("grpo", s, -2.0 + 0.01 * s, -2.0 + 0.01 * s + noise)
        )
    return folder


def test_last_metrics_are_the_curves_last_point_in_one_place() -> None:
    typed = ResultRow.of(row("maxrl", 0, -1.0, -3.0))
    assert typed.metrics[LL] == -1.0 and typed.last_metrics == {LL: -3.0}
    last = typed.at_checkpoint("last")
    # eval/* metrics read at the last evaluation, the run's other figures kept, also when
    # the row is read as a mapping (the bins tables do).
    assert last.metrics == {LL: -3.0, "rollouts": 200.0, "selected_rollouts": 100.0}
    assert last["metrics"][LL] == -3.0 and last.run_id == typed.run_id
    assert typed.at_checkpoint("selected") is typed
    bare = ResultRow.of(row("maxrl", 1, -1.0, None))
    assert bare.last_metrics == {} and LL not in bare.at_checkpoint("last").metrics
    assert [r.metrics.get(LL) for r in rows_at_checkpoint([typed, bare], "last")] == [-3.0, None]
    with pytest.raises(ValueError, match=r"checkpoint='best' is not a checkpoint; allowed: sel"):
        rows_at_checkpoint([typed], "best")


def test_last_is_worse_in_the_metrics_direction_beyond_float32_rounding() -> None:
    assert last_is_worse(LL, -1.0, -1.1) and not last_is_worse(LL, -1.0, -0.9)
    assert not last_is_worse(LL, -1.0, -1.0 - 5e-8)  # a checkpoint selected at the end
    assert last_is_worse(LL, -1.0, math.nan) and not last_is_worse(LL, math.nan, -1.0)
    assert last_is_worse("eval/excess_mse", 1.0, 1.1)


def test_checkpoint_last_changes_the_pivot_and_the_verdict(tmp_path: Path, capsys) -> None:
    write_rows(tmp_path)
    # Three seeds spaced 0.01: half-width t_{0.975, 2} * 0.01 / sqrt(3) = 0.0248.
    assert pivot(tmp_path, LL).splitlines()[2] == (
        "| e: env | -0.99 ± 0.025 | -1.99 ± 0.025 | -5 | -1 |"
    )
    assert pivot(tmp_path, LL, checkpoint="last").splitlines()[2] == (
        "| e: env | -2.99 ± 0.025 | -1.99 ± 0.025 | -5 | -1 |"
    )
    # maxrl − grpo: +1 (win) with early stopping, −1 (loss) without; one comparison, so
    # the Holm interval is Welch's: ± t_{0.975, 4} sqrt(2e-4 / 3) = ± 0.0227.
    selected = verdicts(tmp_path, LL, "maxrl", "grpo").splitlines()[2]
    last = verdicts(tmp_path, LL, "maxrl", "grpo", checkpoint="last").splitlines()[2]
    assert "| +1 [+0.977, +1.02] |" in selected and selected.endswith("| win | – |")
    assert "| -1 [-1.02, -0.977] |" in last and last.endswith("| loss | – |")
    # The default is the selected checkpoint, as before the option existed.
    base = ["verdicts", str(tmp_path), "--metric", LL, "--a", "maxrl", "--b", "grpo"]
    assert main(base) == 0
    default = capsys.readouterr().out
    assert main([*base, "--checkpoint", "selected"]) == 0
    assert capsys.readouterr().out == default
    assert default.splitlines()[2] == selected
    assert main([*base, "--checkpoint", "last"]) == 0 and last in capsys.readouterr().out
    assert main(["pivot", str(tmp_path), "--metric", LL, "--checkpoint", "best"]) == 2
    assert "error: checkpoint='best' is not a checkpoint" in capsys.readouterr().err


CLAIM = """
[[claims]]
id = "x"
text = "Without early stopping MaxRL loses to GRPO."
suite = "s"
point = "e: env"
metric = "eval/log_likelihood"
a = "maxrl"
b = "grpo"
framing = "equal-rollouts"
verdict = "loss"
diff = -1.0
interval = [-1.02, -0.977]
"""


def test_a_claim_about_the_last_evaluation(tmp_path: Path, capsys) -> None:
    write_rows(tmp_path / "results" / "s")
    path = tmp_path / "claims.toml"
    args = ["--claims", str(path), "--results", str(tmp_path / "results")]
    path.write_text(CLAIM + 'checkpoint = "last"\n', encoding="utf-8")
    assert claims_main(args) == 0
    assert "e: env (last evaluation, without early stopping)" in capsys.readouterr().out
    path.write_text(CLAIM, encoding="utf-8")  # the same figures, read with early stopping
    assert claims_main(args) == 1
    assert "verdict loss but the rows give win" in capsys.readouterr().out
    path.write_text(CLAIM + 'checkpoint = "best"\n', encoding="utf-8")
    with pytest.raises(ClaimError, match=r"claim 'x': checkpoint='best'; allowed: selected, last"):
        load_claims(path)
    assert claims_main(args) == 2


def test_the_report_section_sets_the_last_evaluation_beside_the_selected_one(
    tmp_path: Path,
) -> None:
    write_rows(tmp_path)
    append_row(tmp_path / "results.jsonl", row("maxrl", 3, -0.97, None))  # no curve
    text = build_report(tmp_path, plots=False).markdown
    section = text.split("## Without early stopping\n", 1)[1].split("\n## ", 1)[0]
    assert "worse than the selected checkpoint in 3 of 6 seeds." in section
    lines = [line for line in section.splitlines() if line.startswith("| env |")]
    # The curveless seed counts in the experiment table (4 seeds), not here (3).
    assert lines == [
        "| env | maxrl | -0.99 ± 0.025 | -2.99 ± 0.025 | 3 of 3 |",
        "| env | grpo | -1.99 ± 0.025 | -1.99 ± 0.025 | 0 of 3 |",
    ]
    assert "| env | maxrl | 0.01 | 4 |" in text
    assert text.index("## Without early stopping") < text.index("## Learning-rate selection")


def test_no_section_without_curves(tmp_path: Path) -> None:
    for s in range(2):
        append_row(tmp_path / "results.jsonl", row("maxrl", s, -1.0, None))
    assert "Without early stopping" not in build_report(tmp_path, plots=False).markdown
