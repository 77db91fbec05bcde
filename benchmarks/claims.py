"""The study's claims, recomputed from the committed rows.

Every claim that ``docs/results.md`` or the README makes about one agent against another is
an entry of ``docs/results/claims.toml``: the suite, experiment and point (or the whole
comparison family), the metric, agents A and B, the framing, and what the protocol
(``docs/protocol.md``) concludes. A **point** claim states a verdict (``win``, ``loss``,
``equivalent``, ``inconclusive``: A against B) with its figure, ``A − B`` and the
Holm-corrected interval, and which of the two agents chose a learning rate on an edge of
its grid there (``grid_edge``: such a verdict is provisional under the protocol); a
**tally** claim states how many points of a comparison family end in each verdict, and at
how many either agent's rate is on a grid edge (``on_grid_edge``). Either kind may name the
``checkpoint`` its figures are read at: ``selected`` (the default), the checkpoint that
scored best on the validation split, the results with early stopping; or ``last``, each
run's last evaluation, the results without early stopping (``docs/protocol.md``,
"Budgets"; ``benchmarks.report.rows_at_checkpoint``). This module recomputes
each from the committed rows with :func:`benchmarks.summary.families` (Holm within the
family, TOST at 5% of the random-to-Bayes distance), so wording and numbers cannot drift
apart::

    python -m benchmarks.claims                  # every claim; exit 1 on any mismatch
    python -m benchmarks.claims --claims FILE    # another claims file
    python -m benchmarks.claims --changes        # what became of each first-edition claim

``--changes`` prints the table of ``docs/results.md``'s section "What changed from the first
edition" (under its ``<!-- claims: --changes -->`` marker, which
``python -m benchmarks.fill_results_doc`` refreshes): each claim's first-edition wording,
the verdict the rows give under the protocol, and what the second edition does with it
(``second_edition``).

Figures are compared at the three significant digits the file writes. The file's
``withdrawn`` list holds first-edition phrases the corrected statistics do not support
("level with supervised"); none may appear in ``docs/results.md`` or the README.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from benchmarks.report import CHECKPOINTS, Point
from benchmarks.stats import VERDICTS
from benchmarks.summary import ALPHA, MARGIN_FRACTION, _label, families, load_points

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "docs" / "results" / "claims.toml"
#: The documents whose wording the claims file guards.
DOCUMENTS = (ROOT / "docs" / "results.md", ROOT / "README.md")
FRAMINGS = ("equal-rollouts", "equal-steps")
KINDS = ("point", "tally")
#: The ``--changes`` table in a document, under its marker.
CHANGES_TABLE = re.compile(r"^<!-- claims: --changes -->\n((?:\|.*\n)+)", re.M)
#: The order the table writes a tally in.
TALLY_ORDER = ("win", "equivalent", "inconclusive", "loss")
_REQUIRED = ("id", "text", "suite", "metric", "a", "b", "framing")
_ALLOWED = {
    *_REQUIRED,
    "kind",
    "experiment",
    "point",
    "at",
    "verdict",
    "diff",
    "interval",
    "tally",
    "first_edition",
    "source",
    "second_edition",
    "grid_edge",
    "on_grid_edge",
    "checkpoint",
}


class ClaimError(ValueError):
    """A claims file entry that cannot be checked (names the claim, field and value)."""


@dataclass
class Claim:
    """One entry of the claims file (see the module docstring)."""

    id: str
    text: str
    suite: str
    metric: str
    a: str
    b: str
    framing: str
    kind: str = "point"
    experiment: str | None = None
    point: str | None = None
    at: str = "all"
    verdict: str | None = None
    diff: float | None = None
    interval: tuple[float, float] | None = None
    tally: dict[str, int] = field(default_factory=dict)
    first_edition: str = ""
    source: str = ""
    second_edition: str = ""
    grid_edge: list[str] = field(default_factory=list)
    on_grid_edge: int = 0
    checkpoint: str = "selected"


@dataclass
class Outcome:
    """A claim and what the committed rows give for it.

    Attributes:
        claim: The claim.
        verdict: Recomputed verdict (point claims).
        diff: Recomputed ``A − B``.
        interval: Recomputed Holm-corrected interval.
        tally: Recomputed verdict counts (tally claims).
        grid_edge: Agents whose learning rate sits on a grid edge at the point (point
            claims), or the number of such points in the family (tally claims).
        problems: How the claim differs from the rows (empty: it holds).
    """

    claim: Claim
    verdict: str = ""
    diff: float = math.nan
    interval: tuple[float, float] = (math.nan, math.nan)
    tally: dict[str, int] = field(default_factory=dict)
    grid_edge: list[str] | int = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the rows give what the claim says."""
        return not self.problems


def _claim(entry: Any, index: int) -> Claim:
    if not isinstance(entry, dict):
        raise ClaimError(f"claims[{index}] must be a table; got {entry!r:.60}")
    name = entry.get("id", f"claims[{index}]")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ClaimError(f"claim {name!r} lacks {', '.join(missing)}")
    unknown = sorted(set(entry) - _ALLOWED)
    if unknown:
        raise ClaimError(
            f"claim {name!r} has unknown field(s) {unknown}; allowed: {sorted(_ALLOWED)}"
        )
    claim = Claim(**entry)
    if claim.kind not in KINDS:
        raise ClaimError(f"claim {name!r}: kind={claim.kind!r}; allowed: {', '.join(KINDS)}")
    if claim.framing not in FRAMINGS:
        raise ClaimError(
            f"claim {name!r}: framing={claim.framing!r}; allowed: {', '.join(FRAMINGS)}"
        )
    if claim.checkpoint not in CHECKPOINTS:
        raise ClaimError(
            f"claim {name!r}: checkpoint={claim.checkpoint!r}; allowed: {', '.join(CHECKPOINTS)} "
            "(selected: with early stopping, last: without)"
        )
    if claim.kind == "point":
        if claim.point is None:
            raise ClaimError(f"claim {name!r}: a point claim needs point (a table's point label)")
        if claim.verdict not in VERDICTS:
            raise ClaimError(
                f"claim {name!r}: verdict={claim.verdict!r}; allowed: {', '.join(VERDICTS)}"
            )
        if claim.diff is None or claim.interval is None or len(claim.interval) != 2:
            raise ClaimError(
                f"claim {name!r}: a point claim needs diff and interval = [low, high]; got "
                f"diff={claim.diff!r}, interval={claim.interval!r}"
            )
        claim.interval = (float(claim.interval[0]), float(claim.interval[1]))
    else:
        if set(claim.tally) != set(VERDICTS):
            raise ClaimError(
                f"claim {name!r}: tally must count every verdict ({', '.join(VERDICTS)}); got "
                f"{claim.tally!r}"
            )
    return claim


def load_claims(path: str | Path = CLAIMS) -> list[Claim]:
    """The claims of a claims file, validated.

    Raises:
        ClaimError: An unreadable file, or an entry with a missing, unknown or bad field,
            or a repeated id.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ClaimError(f"cannot read claims file {path}: {error}") from error
    entries = data.get("claims")
    if not isinstance(entries, list) or not entries:
        raise ClaimError(f"{path} must hold a non-empty [[claims]] array")
    claims = [_claim(entry, i) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for claim in claims:
        if claim.id in seen:
            raise ClaimError(f"claim id {claim.id!r} appears twice in {path}")
        seen.add(claim.id)
    return claims


def load_withdrawn(path: str | Path = CLAIMS) -> list[str]:
    """The file's ``withdrawn`` phrases: first-edition wording the rows do not support.

    Raises:
        ClaimError: ``withdrawn`` present but not a list of non-empty strings.
    """
    with open(path, "rb") as handle:
        phrases = tomllib.load(handle).get("withdrawn", [])
    if not isinstance(phrases, list) or not all(isinstance(s, str) and s for s in phrases):
        raise ClaimError(f"withdrawn in {path} must be a list of non-empty strings")
    return phrases


def find_withdrawn(
    phrases: Sequence[str], documents: Sequence[str | Path] = DOCUMENTS
) -> list[str]:
    """``"document: phrase"`` for every withdrawn phrase a document still contains.

    Matching ignores case and line breaks (a phrase may wrap across lines of the markdown).
    The table under a ``<!-- claims: --changes -->`` marker is skipped: it quotes the first
    edition's wording on purpose, beside the verdict that replaced it.
    """
    found = []
    for document in documents:
        text = CHANGES_TABLE.sub("", Path(document).read_text(encoding="utf-8"))
        text = " ".join(text.split()).lower()
        for phrase in phrases:
            if " ".join(phrase.split()).lower() in text:
                found.append(f"{Path(document).name}: {phrase!r}")
    return found


def _same(computed: float, claimed: float) -> bool:
    """Equal at three significant digits (how the claims file writes figures)."""
    return f"{computed:.3g}" == f"{float(claimed):.3g}"


def check(
    claim: Claim,
    results: str | Path = ROOT / "docs" / "results",
    cache: dict[tuple[str, str | None, str], tuple[list[Point], set[str]]] | None = None,
) -> Outcome:
    """Recompute one claim from the rows of ``results/<suite>``.

    Args:
        claim: The claim.
        results: The directory that holds the suites' result directories.
        cache: Points already built, by (suite, experiment, checkpoint), shared between
            claims.

    Returns:
        The :class:`Outcome` (its ``problems`` say what differs).

    Raises:
        ClaimError: The suite, experiment, point or comparison family does not exist.
    """
    cache = {} if cache is None else cache
    key = (claim.suite, claim.experiment, claim.checkpoint)
    if key not in cache:
        directory = Path(results) / claim.suite
        if (
            not (directory / "results.jsonl.gz").exists()
            and not (directory / "results.jsonl").exists()
        ):
            raise ClaimError(f"claim {claim.id!r}: suite={claim.suite!r} has no rows in {results}")
        try:
            cache[key] = load_points(directory, claim.experiment, claim.checkpoint)
        except ValueError as error:
            raise ClaimError(f"claim {claim.id!r}: {error}") from error
    points, edges = cache[key]
    found = families(points, claim.metric, claim.a, claim.b, MARGIN_FRACTION, ALPHA, edges)
    if claim.kind == "tally":
        return _check_tally(claim, found)
    outcome = Outcome(claim)
    labels = {
        _label(p, claim.experiment is None): (f, i)
        for f in found
        for i, p in enumerate(f.points)
        if claim.at in ("all", f.label)
    }
    if claim.point not in labels:
        raise ClaimError(
            f"claim {claim.id!r}: point={claim.point!r} is not a point of {claim.a} vs "
            f"{claim.b} on {claim.metric}; allowed: {'; '.join(labels) or 'none'}"
        )
    family, index = labels[claim.point]
    c = family.comparisons[index]
    outcome.grid_edge = family.edges[index]
    if sorted(outcome.grid_edge) != sorted(claim.grid_edge):
        outcome.problems.append(
            f"grid_edge {claim.grid_edge} but the rows give {outcome.grid_edge}"
        )
    outcome.verdict, outcome.diff, outcome.interval = c.verdict, c.diff, (c.low, c.high)
    if c.verdict != claim.verdict:
        outcome.problems.append(f"verdict {claim.verdict} but the rows give {c.verdict}")
    figures = [
        (claim.diff, c.diff, "diff"),
        (claim.interval[0], c.low, "low"),
        (claim.interval[1], c.high, "high"),
    ]
    for claimed, computed, name in figures:
        if not _same(computed, claimed):
            outcome.problems.append(f"{name} {claimed} but the rows give {computed:.3g}")
    return outcome


def _check_tally(claim: Claim, found: Sequence[Any]) -> Outcome:
    """A tally claim against its comparison family among ``found`` (see :func:`check`)."""
    family = next((f for f in found if f.label == claim.at), None)
    if family is None:
        raise ClaimError(
            f"claim {claim.id!r}: no family at={claim.at!r} of {claim.a} vs {claim.b} on "
            f"{claim.metric}; allowed: {', '.join(f.label for f in found) or 'none'}"
        )
    outcome = Outcome(claim, tally=family.tally())
    if outcome.tally != claim.tally:
        outcome.problems.append(f"tally {claim.tally} but the rows give {outcome.tally}")
    outcome.grid_edge = sum(bool(e) for e in family.edges)
    if outcome.grid_edge != claim.on_grid_edge:
        outcome.problems.append(
            f"on_grid_edge {claim.on_grid_edge} but the rows give {outcome.grid_edge}"
        )
    return outcome


def check_all(
    claims: Sequence[Claim], results: str | Path = ROOT / "docs" / "results"
) -> list[Outcome]:
    """:func:`check` of every claim, each suite's rows read once."""
    cache: dict[tuple[str, str | None, str], tuple[list[Point], set[str]]] = {}
    return [check(claim, results, cache) for claim in claims]


def table(outcomes: Sequence[Outcome]) -> str:
    """Markdown: one line per claim, the claimed and the recomputed result."""
    lines = [
        "| claim | A vs B | point | claimed | recomputed | grid edge | holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        c = o.claim
        if c.kind == "tally":
            claimed, got = _counts(c.tally), _counts(o.tally)
            where = f"{c.at} (win/equivalent/inconclusive/loss)"
        else:
            claimed = f"{c.verdict} {_figure(c.diff, c.interval)}"
            got = f"{o.verdict} {_figure(o.diff, o.interval)}"
            where = c.point or ""
        if c.checkpoint != "selected":
            where += f" ({c.checkpoint} evaluation, without early stopping)"
        edge = o.grid_edge if isinstance(o.grid_edge, int) else ", ".join(o.grid_edge) or "–"
        holds = "yes" if o.ok else "NO: " + "; ".join(o.problems)
        lines.append(
            f"| {c.id} | {c.a} vs {c.b} ({c.suite}, {c.metric}) | {where} | {claimed} | {got} "
            f"| {edge} | {holds} |"
        )
    return "\n".join(lines)


def _counts(tally: dict[str, int]) -> str:
    """A tally as ``win/equivalent/inconclusive/loss`` counts (``?`` for a missing one)."""
    return "/".join(str(tally.get(v, "?")) for v in TALLY_ORDER)


def _figure(diff: float, interval: tuple[float, float]) -> str:
    """``A − B [low, high]`` at the three significant digits the claims file writes."""
    return f"{diff:+.3g} [{interval[0]:+.3g}, {interval[1]:+.3g}]"


def _verdict_text(outcome: Outcome) -> str:
    if outcome.claim.kind == "tally":
        return f"{_counts(outcome.tally)} (win/equivalent/inconclusive/loss)"
    return f"{outcome.verdict}: {_figure(outcome.diff, outcome.interval)}"


def changes(outcomes: Sequence[Outcome]) -> str:
    """Markdown: what became of each claim the first edition made.

    One line per claim with ``first_edition`` wording (claims the first edition did not
    make, whose ``first_edition`` is a note in parentheses, are left out): that wording,
    the verdict the committed rows give under the protocol (A − B and the Holm-corrected
    interval, or a tally), and ``second_edition``.
    """
    lines = [
        "| first edition said | A vs B (suite, metric) | verdict under the protocol "
        "| second edition |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        c = o.claim
        if not c.first_edition or c.first_edition.startswith("("):
            continue  # "(the first edition did not state it)", "(new in the second edition)"
        last = ", last evaluation" if c.checkpoint == "last" else ""
        where = f"{c.a} vs {c.b} ({c.suite}, {c.metric.removeprefix('eval/')}{last})"
        lines.append(
            f"| {c.first_edition} | {where} | {_verdict_text(o)} | {c.second_edition or '–'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.claims [--claims FILE] [--results DIR] [--changes]``.

    Returns 0 when every claim holds and no withdrawn wording is left (``--changes``: 0 once
    the table is printed), 1 otherwise, 2 for a claims file that cannot be checked.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.claims", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--claims", default=str(CLAIMS), help="claims file (TOML)")
    parser.add_argument(
        "--results", default=str(ROOT / "docs" / "results"), help="directory of suite results"
    )
    parser.add_argument(
        "--changes",
        action="store_true",
        help="print only the table of what became of each first-edition claim",
    )
    args = parser.parse_args(argv)
    try:
        outcomes = check_all(load_claims(args.claims), args.results)
        stale = find_withdrawn(load_withdrawn(args.claims))
    except ClaimError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.changes:
        print(changes(outcomes), end="")
        return 0
    print(table(outcomes))
    failed = [o.claim.id for o in outcomes if not o.ok]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} claims do not hold: {', '.join(failed)}")
    for where in stale:
        print(f"withdrawn wording still in {where}")
    if failed or stale:
        return 1
    print(f"all {len(outcomes)} claims hold; no withdrawn wording in the documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
