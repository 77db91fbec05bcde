#!/usr/bin/env bash
# Run (or resume) every suite of the study into docs/results/<suite>/, one after the other,
# with 2 workers, recording each suite's wall and CPU time in docs/results/<suite>/timing.txt.
#   bash benchmarks/run_study.sh                 # all suites
#   bash benchmarks/run_study.sh tokens low-snr  # some of them
# Rerunning resumes: finished runs are skipped. Rows are appended as runs finish.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SUITES=("$@")
if [ ${#SUITES[@]} -eq 0 ]; then
  SUITES=(low-snr classification tokens low-snr-heads low-snr-offpolicy)
fi
for suite in "${SUITES[@]}"; do
  mkdir -p "docs/results/$suite"
  cp "benchmarks/suites/$suite.toml" "docs/results/$suite/suite.toml"
  start=$(date +%s)
  /usr/bin/time -f "wall %e s, user %U s, system %S s" -o "docs/results/$suite/.time" \
    "$PY" -m benchmarks.run "$suite" --out docs/results --workers 2 --no-progress
  status=$?
  echo "$(date -u +%FT%TZ) exit $status after $(( $(date +%s) - start )) s: $(cat "docs/results/$suite/.time")" \
    >> "docs/results/$suite/timing.txt"
done
