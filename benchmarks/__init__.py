"""Benchmark suites of maxrl-bench: runner (``benchmarks.run``), backends, results, report.

``python -m benchmarks.run quick`` (or the console script ``maxrl-bench quick``) runs the
quick suite; ``python -m benchmarks.report runs/quick`` rewrites its report. Suites live in
``benchmarks/suites/*.toml``; see ``docs/benchmarks.md``.
"""
