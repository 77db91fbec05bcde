"""Code structure: no function in the library packages runs over ``MAX_LINES`` lines.

A function's length is ``end_lineno - lineno + 1`` of its ``def`` (decorators excluded,
docstring included); nested functions and methods count on their own too. A longer one is
split by job into named helpers.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "benchmarks", "maxrl_envs")
MAX_LINES = 80


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function and method defined in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def test_function_lengths_are_measured_from_def_to_last_line(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("@staticmethod\ndef f():\n    def g():\n        pass\n\n    return 1\n")
    assert sorted(function_lengths(source)) == [("f", 2, 5), ("g", 3, 2)]


def test_no_function_over_the_line_limit() -> None:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 20  # the packages were found
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
        for path in files
        for name, line, length in function_lengths(path)
        if length > MAX_LINES
    ]
    assert not offenders, f"functions over {MAX_LINES} lines (split them by job): " + "; ".join(
        offenders
    )


def statements_after_main_guard(path: Path) -> list[int]:
    """Lines of top-level statements after ``if __name__ == "__main__":`` in ``path``.

    Such a definition exists on import but not yet when the module runs as ``python -m``,
    so the CLI fails where the tests (which import) pass.
    """
    body = ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body
    guards = [
        i
        for i, node in enumerate(body)
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
    ]
    return [node.lineno for node in body[guards[0] + 1 :]] if guards else []


def test_statements_after_main_guard_are_found(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        'def f():\n    pass\n\nif __name__ == "__main__":\n    f()\n\ndef g():\n    pass\n'
    )
    assert statements_after_main_guard(source) == [7]


def test_nothing_is_defined_after_the_main_guard() -> None:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in files
        for line in statements_after_main_guard(path)
    ]
    assert not offenders, f"defined after the __main__ guard (missing under python -m): {offenders}"
