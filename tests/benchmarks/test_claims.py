"""The claims file: every claim of docs/results.md and the README recomputed from the committed
rows with the protocol's statistics, and no withdrawn first-edition wording left."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.claims import (
    CLAIMS,
    ClaimError,
    check,
    find_withdrawn,
    load_claims,
    load_withdrawn,
    main,
)

CLAIM_LIST = load_claims()
_POINTS: dict = {}  # (suite, experiment) -> points, shared by the parametrized cases


@pytest.mark.parametrize("claim", CLAIM_LIST, ids=lambda c: c.id)
def test_claim_holds_on_the_committed_rows(claim) -> None:
    outcome = check(claim, cache=_POINTS)
    assert outcome.ok, outcome.problems


def test_no_withdrawn_wording_in_the_results_or_readme() -> None:
    phrases = load_withdrawn()
    assert len(phrases) >= 5
    assert find_withdrawn(phrases) == []


def test_withdrawn_wording_is_found_across_line_breaks(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("MaxRL is level\nwith Supervised at N = 256.\n", encoding="utf-8")
    assert find_withdrawn(["level with supervised"], [doc]) == ["doc.md: 'level with supervised'"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "claims.toml"
    path.write_text(text, encoding="utf-8")
    return path


CLAIM = """
[[claims]]
id = "x"
text = "SAC beats MaxRL at SNR 10."
suite = "low-snr-offpolicy"
point = "gaussian: gaussian snr=10"
metric = "eval/log_likelihood"
a = "maxrl"
b = "sac"
framing = "equal-rollouts"
verdict = "{verdict}"
diff = {diff}
interval = [-0.526, -0.47]
grid_edge = ["sac"]
"""


def test_a_claim_that_the_rows_contradict_fails_the_command(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, CLAIM.format(verdict="win", diff=-0.4))
    assert main(["--claims", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "verdict win but the rows give loss" in out and "diff -0.4 but the rows give -0.498" in out
    )
    assert "1 of 1 claims do not hold: x" in out
    path = _write(tmp_path, CLAIM.format(verdict="loss", diff=-0.498).replace('["sac"]', "[]"))
    assert main(["--claims", str(path)]) == 1
    assert "grid_edge [] but the rows give ['sac']" in capsys.readouterr().out
    path = _write(tmp_path, CLAIM.format(verdict="loss", diff=-0.498))
    assert main(["--claims", str(path)]) == 0


@pytest.mark.parametrize(
    ("replace", "match"),
    [
        (('verdict = "{verdict}"', 'verdict = "tie"'), "verdict='tie'; allowed: win, loss"),
        (('framing = "equal-rollouts"', 'framing = "equal"'), "framing='equal'; allowed"),
        (('point = "gaussian: gaussian snr=10"', 'point = "snr=10"'), "point='snr=10' is not"),
        (('a = "maxrl"', 'colour = "red"\na = "maxrl"'), r"unknown field\(s\) \['colour'\]"),
        (('suite = "low-snr-offpolicy"', 'suite = "nope"'), "suite='nope' has no rows"),
    ],
)
def test_a_bad_claim_is_a_clear_error(tmp_path: Path, replace, match, capsys) -> None:
    text = CLAIM.replace(*replace).format(verdict="loss", diff=-0.498)
    with pytest.raises(ClaimError, match=match):
        for claim in load_claims(_write(tmp_path, text)):
            check(claim)
    assert main(["--claims", str(tmp_path / "claims.toml")]) == 2
    assert "error: claim 'x'" in capsys.readouterr().err


def test_the_claims_file_records_the_first_edition_for_every_claim() -> None:
    assert CLAIMS.exists() and len(CLAIM_LIST) >= 20
    assert all(c.first_edition and c.source for c in CLAIM_LIST)


def test_results_doc_quotes_the_changes_table_the_rows_give() -> None:
    from benchmarks.claims import CHANGES_TABLE, DOCUMENTS, changes

    quoted = CHANGES_TABLE.findall(DOCUMENTS[0].read_text(encoding="utf-8"))
    assert len(quoted) == 1
    outcomes = [check(claim, cache=_POINTS) for claim in CLAIM_LIST]
    assert quoted[0] == changes(outcomes)
    stated = [c for c in CLAIM_LIST if not c.first_edition.startswith("(")]
    assert len(quoted[0].splitlines()) == 2 + len(stated)


def test_changes_lists_first_edition_claims_with_their_verdict(tmp_path: Path, capsys) -> None:
    said = 'first_edition = "TD3 wins big"\nsecond_edition = "kept as first-edition evidence"\n'
    text = CLAIM.format(verdict="loss", diff=-0.498) + said
    text += CLAIM.format(verdict="loss", diff=-0.498).replace('id = "x"', 'id = "y"')
    assert main(["--claims", str(_write(tmp_path, text)), "--changes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header, rule, and only the claim the first edition made
    assert lines[2] == (
        "| TD3 wins big | maxrl vs sac (low-snr-offpolicy, log_likelihood) "
        "| loss: -0.498 [-0.526, -0.47] | kept as first-edition evidence |"
    )


def test_withdrawn_wording_quoted_in_the_changes_table_is_allowed(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    table = "<!-- claims: --changes -->\n| MaxRL is level with supervised | x |\n"
    doc.write_text(table + "\nText.\n", encoding="utf-8")
    assert find_withdrawn(["level with supervised"], [doc]) == []
    doc.write_text(table + "\nMaxRL is level with supervised.\n", encoding="utf-8")
    assert find_withdrawn(["level with supervised"], [doc]) == ["doc.md: 'level with supervised'"]
