"""``benchmarks/gpu_check.sh``: it parses, and ``pytest -m gpu`` selects every CUDA test."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_test_that_needs_cuda_has_the_gpu_marker() -> None:
    # gpu_check.sh runs the CUDA tests as `pytest -m gpu`: a test that skips without CUDA but
    # lacks the marker would never run anywhere.
    needs_cuda = re.compile(r"skipif\(\s*not torch\.cuda\.is_available\(\)|^\s*@needs_cuda\b")
    missing = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not needs_cuda.search(line):
                continue
            j = i  # the decorators of the same function: up to the next `def`
            while j < len(lines) and not lines[j].lstrip().startswith("def "):
                j += 1
            k = i
            while k > 0 and lines[k - 1].lstrip().startswith(("@", ")", '"', "reason", "not ")):
                k -= 1
            block = "\n".join(lines[k : j + 1])
            if "@pytest.mark.gpu" not in block and "needs_cuda = " not in line:
                missing.append(f"{path.relative_to(ROOT)}:{i + 1}")
    assert not missing, f"CUDA tests without @pytest.mark.gpu: {missing}"
