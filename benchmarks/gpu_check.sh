#!/usr/bin/env bash
# GPU check: everything that needs CUDA, in one script of a few minutes.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on a CUDA machine
#   OUT=/some/dir PYTHON=python3 bash benchmarks/gpu_check.sh
#
# Steps (each logs to $OUT/NN-name.log; the first failure stops the script with a message
# and a non-zero exit status):
#   1. the machine: nvidia-smi, torch's CUDA build, the device;
#   2. the package: imported as is, else `pip install -e .[dev]` (nothing else is installed);
#   3. the CUDA tests: `pytest -m gpu` (every test that needs CUDA carries the marker; they
#      skip without CUDA), which includes "no host sync in a training step";
#   4. the native vector env on device="cuda": a few steps of each task kind;
#   5. the trainer on device="cuda": a short run per task kind, one with compile=True;
#   6. a tiny suite on the GPU (a TOML written to /tmp, device = "cuda");
#   7. evaluation on the GPU: counts its host syncs (informational);
#   8. benchmarks/throughput.py with the CUDA rows (and SB3 PPO for the ratio), JSON to $OUT.
#
# Needs: a CUDA GPU, and the repository's .venv or a Python whose torch has CUDA ($PYTHON).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/gpu_check_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONUNBUFFERED=1
STEP=0
START=$SECONDS

step() {  # step NAME COMMAND...: run COMMAND, log it, stop on failure
  local name="$1"; shift
  STEP=$((STEP + 1))
  local log
  log="$OUT/$(printf '%02d' "$STEP")-$name.log"
  echo "== [$STEP] $name ($((SECONDS - START)) s so far) -> $log"
  # Not inside `if`: there bash would ignore `set -e` in the step's own commands.
  set +e
  (set -e; "$@") >"$log" 2>&1
  local status=$?
  set -e
  if [[ $status -ne 0 ]]; then
    echo "FAILED at step $STEP ($name), exit status $status; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    echo "gpu_check: FAILED at step $STEP ($name)" >&2
    exit 1
  fi
  tail -n 3 "$log"
}

machine() {
  if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "(no nvidia-smi on PATH)"; fi
  "$PYTHON" - <<'EOF'
import sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "CUDA build", torch.version.cuda)
if not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False: this torch has no CUDA or no GPU is visible")
print("device:", torch.cuda.get_device_name(0), "count:", torch.cuda.device_count())
EOF
}

package() {
  if "$PYTHON" -c "import maxrl_envs, agents, benchmarks, stable_baselines3, pytest" 2>/dev/null; then
    echo "package importable; nothing installed"
  else
    echo "installing the package: pip install -e .[dev]"
    "$PYTHON" -m pip install -q -e ".[dev]"
  fi
  "$PYTHON" -c "import agents.trainer, benchmarks.throughput; print('imports ok')"
}

cuda_tests() {
  "$PYTHON" -m pytest -q -rs -m gpu -p no:cacheprovider tests
}

vector_env() {
  "$PYTHON" - <<'EOF'
import gymnasium as gym
import torch
import maxrl_envs  # noqa: F401  (registers the ids)

for env_id in ("MaxRLRegression-v0", "MaxRLClassificationManyClass-v0", "MaxRLTokens-v0"):
    env = gym.make_vec(env_id, num_envs=1024, group_size=16, device="cuda")
    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.is_cuda, type(obs)
    for _ in range(6):
        actions = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions).cuda())
        assert obs.is_cuda and reward.is_cuda and terminated.is_cuda
    torch.cuda.synchronize()
    print(env_id, "ok: obs", tuple(obs.shape), "reward mean", float(reward.float().mean()))
    env.close()
EOF
}

trainer() {
  local env
  for env in MaxRLRegression-v0 MaxRLClassificationManyClass-v0 MaxRLTokens-v0; do
    "$PYTHON" -m agents.train --env "$env" --device cuda --num-groups 1024 --group-size 16 \
      --budget 400000 --eval-every 200000 --log-dir "$OUT/runs" --no-progress --no-resume
  done
  local reason
  reason="$("$PYTHON" -c "from agents.compile import unavailable_reason as u; print(u('cuda') or '')")"
  if [[ -n "$reason" ]]; then
    echo "compile=True skipped: $reason"
  else
    "$PYTHON" -m agents.train --env MaxRLRegression-v0 --device cuda --num-groups 1024 \
      --group-size 64 --budget 1000000 --eval-every 500000 --compile --run-name compiled \
      --log-dir "$OUT/runs" --no-progress --no-resume
  fi
}

suite() {
  local toml=/tmp/maxrl_gpu_check_suite.toml
  cat >"$toml" <<'EOF'
name = "gpu-check"
description = "Tiny suite on the GPU (benchmarks/gpu_check.sh)."

[settings]
seeds = [0]
budget = 65536
eval_every = 32768
eval_samples = 16
pass_k = 4
group_size = 16
num_groups = 256
device = "cuda"
lr_grid = [3e-3]
lr_points = 1
tune_seeds = 1

[[experiments]]
name = "main"
envs = [{ id = "MaxRLRegression-v0", kwargs = { snr = 1.0 } }]
agents = ["maxrl", "grpo"]
EOF
  "$PYTHON" -m benchmarks.run "$toml" --out "$OUT/suite" --workers 1 --no-progress
}

evaluation_syncs() {
  "$PYTHON" - <<'EOF'
import warnings
import torch
from agents.trainer import TrainConfig, Trainer

for env_id in ("MaxRLRegression-v0", "MaxRLClassificationManyClass-v0", "MaxRLTokens-v0"):
    trainer = Trainer(TrainConfig(env_id=env_id, device="cuda", log_dir=None))
    trainer.evaluate()  # caches, allocator warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = trainer.evaluate()
    torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    contexts = trainer.core.num_contexts("test")
    print(f"{env_id}: evaluate on {contexts} contexts: {len(syncs)} host syncs "
          f"(pass@1 {metrics['eval/pass@1']:.3f})")
EOF
}

throughput() {
  "$PYTHON" -m benchmarks.throughput --devices cuda --repeats 3 --seconds 0.2 \
    --sb3 PPO --sb3-tasks regression --json "$OUT/throughput_gpu.json"
}

step machine machine
step package package
step cuda-tests cuda_tests
step vector-env vector_env
step trainer trainer
step suite suite
step evaluation-syncs evaluation_syncs
step throughput throughput
echo "gpu_check: all $STEP steps passed in $((SECONDS - START)) s; logs and throughput_gpu.json in $OUT"
