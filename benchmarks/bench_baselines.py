"""Gradient variance of MaxRL's baselines at equal bias: b = 1, leave-one-out, binary.

Every estimator compared in one row is unbiased for the same objective's gradient:

- ``maxrl`` (b = 1) and ``maxrl-loo`` (b_j = omega_j * mean of the other likelihoods) at
  order T = N, both unbiased for grad J_N;
- where rewards are binary, ``maxrl-binary`` (the paper's practical form, 0 for all-fail
  groups) is unbiased for grad J_{N-1}, so it is compared with ``maxrl`` and ``maxrl-loo``
  at order T = N - 1 (the ``T = N-1`` rows).

For each setting the script draws R independent groups of N rollouts from a fixed policy,
forms each group's gradient estimate g = (1/N) sum_j A_j grad log m(z_j), and reports the
total variance tr Cov(g) = E|g - E g|^2 (its Monte-Carlo estimate over the R groups), and
the bias check |mean - grad J_T| / sqrt(tr Cov / R), the distance of the Monte-Carlo
mean from the exact gradient in units of its own Monte-Carlo error (about 1 for an
unbiased estimator, far above 1 for a biased one; the largest over the row's estimators).

Settings (cheap closed forms, no networks):

- ``categorical``: a softmax policy over K = 64 outcomes with random logits, the score
  e_z - pi in closed form; likelihoods binary (a set of outcomes passes; pass rates
  p = 0.01, 0.1, 0.5) or graded (l(z) = exp(-(z - c)^2 / 2w^2), p = E l).
- ``gaussian``: a Gaussian policy N(mu, s^2) on one action with a Gaussian head of width
  h around a target y, parameters (mu, log s); the score in closed form. The target sits
  at 0.5, 2 or 4 policy widths from the mean (easy to hard context).

Run: ``python -m benchmarks.bench_baselines`` (about a minute on one core; ``--reps``
trades time for precision).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from agents.estimators import maxrl_binary_weights, maxrl_loo_weights, maxrl_weights

F64 = torch.float64


def _categorical_setting(kind: str, level: float, gen: torch.Generator) -> dict:
    k = 64
    logits = 0.5 * torch.randn(k, generator=gen, dtype=F64)
    pi = torch.softmax(logits, 0)
    if kind == "binary":
        # Pass on the outcomes of the smallest probabilities summing to about ``level``.
        order = torch.argsort(pi)
        passing = torch.zeros(k, dtype=F64)
        mass = 0.0
        for i in order.tolist():
            if mass >= level * 0.999:
                break
            passing[i], mass = 1.0, mass + float(pi[i])
        lik = passing
    else:
        width = level
        lik = torch.exp(-0.5 * ((torch.arange(k, dtype=F64) - 40.0) / width) ** 2)
    return {"pi": pi, "lik": lik}


def _categorical_exact(pi: torch.Tensor, lik: torch.Tensor, order: int) -> torch.Tensor:
    theta = pi.log().clone().requires_grad_(True)
    p = (torch.softmax(theta, 0) * lik).sum()
    objective = -sum((1 - p) ** k / k for k in range(1, order + 1))
    return torch.autograd.grad(objective, theta)[0]


def _categorical_groups(setting: dict, group_size: int, reps: int, gen: torch.Generator):
    pi, lik = setting["pi"], setting["lik"]
    z = torch.multinomial(pi.expand(reps, -1), group_size, replacement=True, generator=gen)
    return lik[z], z


def _categorical_gradients(setting: dict, weights: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    pi = setting["pi"]
    reps, group_size = z.shape
    counts = torch.zeros(reps, pi.shape[0], dtype=F64).scatter_add_(1, z, weights)
    return (counts - weights.sum(1, keepdim=True) * pi) / group_size


def _gaussian_groups(setting: dict, group_size: int, reps: int, gen: torch.Generator):
    a = setting["mu"] + setting["s"] * torch.randn(reps, group_size, generator=gen, dtype=F64)
    log_lik = -0.5 * ((a - setting["y"]) / setting["h"]) ** 2
    return log_lik, a


def _gaussian_gradients(setting: dict, weights: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    u = (a - setting["mu"]) / setting["s"]
    score_mu = u / setting["s"]
    score_log_s = u.square() - 1.0
    group_size = a.shape[1]
    return (
        torch.stack([(weights * score_mu).sum(1), (weights * score_log_s).sum(1)], 1) / group_size
    )


def _gaussian_exact(setting: dict, order: int) -> torch.Tensor:
    mu = torch.tensor(setting["mu"], dtype=F64, requires_grad=True)
    log_s = torch.tensor(math.log(setting["s"]), dtype=F64, requires_grad=True)
    var = log_s.exp() ** 2 + setting["h"] ** 2
    p = setting["h"] / var.sqrt() * torch.exp(-0.5 * (setting["y"] - mu) ** 2 / var)
    objective = -sum((1 - p) ** k / k for k in range(1, order + 1))
    return torch.stack(torch.autograd.grad(objective, (mu, log_s)))


def _estimators(binary: bool, group_size: int, log_space: bool) -> list[tuple[str, int, object]]:
    """(label, order, weights function of the group's likelihoods or log-likelihoods)."""
    rows: list[tuple[str, int, object]] = [
        (
            "maxrl b=1",
            group_size,
            lambda x, t=group_size: maxrl_weights(x, t, 1.0, log_space=log_space),
        ),
        (
            "maxrl-loo",
            group_size,
            lambda x, t=group_size: maxrl_loo_weights(x, t, log_space=log_space),
        ),
    ]
    if binary and group_size >= 2:
        t = group_size - 1
        rows += [
            ("maxrl b=1", t, lambda x, t=t: maxrl_weights(x, t, 1.0)),
            ("maxrl-loo", t, lambda x, t=t: maxrl_loo_weights(x, t)),
            ("maxrl-binary", t, maxrl_binary_weights),
        ]
    return rows


def measure(reps: int, seed: int, group_sizes: list[int]) -> list[dict]:
    """Total variance and mean check of every estimator in every setting."""
    gen = torch.Generator().manual_seed(seed)
    settings = []
    for p in (0.01, 0.1, 0.5):
        settings.append(
            ("categorical binary", f"p={p}", True, _categorical_setting("binary", p, gen))
        )
    for width in (1.0, 6.0):
        settings.append(
            ("categorical graded", f"w={width}", False, _categorical_setting("graded", width, gen))
        )
    for dist in (0.5, 2.0, 4.0):
        gauss = {"mu": 0.0, "s": 1.0, "h": 0.3, "y": dist}
        settings.append(("gaussian head", f"|y-mu|={dist}s", False, gauss))
    out = []
    for family, label, binary, setting in settings:
        is_gauss = family == "gaussian head"
        for group_size in group_sizes:
            if is_gauss:
                x, z = _gaussian_groups(setting, group_size, reps, gen)
                p = float(x.exp().mean())
            else:
                x, z = _categorical_groups(setting, group_size, reps, gen)
                p = float((setting["pi"] * setting["lik"]).sum())
            for name, order, fn in _estimators(binary, group_size, is_gauss):
                weights = fn(x).to(F64)
                if is_gauss:
                    grads = _gaussian_gradients(setting, weights, z)
                    exact = _gaussian_exact(setting, order)
                else:
                    grads = _categorical_gradients(setting, weights, z)
                    exact = _categorical_exact(setting["pi"], setting["lik"], order)
                mean = grads.mean(0)
                var = grads.var(0)
                # |mean - exact| in units of the Monte-Carlo error sqrt(tr Cov / R): about 1
                # for an estimator unbiased for grad J_T, >> 1 for a biased one.
                error = float((mean - exact).norm()) / math.sqrt(float(var.sum()) / reps)
                out.append(
                    {
                        "setting": f"{family} {label}",
                        "p": p,
                        "N": group_size,
                        "T": order,
                        "estimator": name,
                        "total_variance": float(var.sum()),
                        "grad_norm": float(exact.norm()),
                        "mean_error": error,
                    }
                )
    return out


def table(rows: list[dict]) -> str:
    """Markdown: one line per (setting, N, T); variance of each estimator and ratios."""
    lines = [
        "| setting | p | N | T | var b=1 | var LOO | var binary | LOO / b=1 | binary / LOO "
        "| |grad J_T| | bias check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = dict.fromkeys((r["setting"], r["N"], r["T"]) for r in rows)
    for setting, n, t in keys:
        group = {
            r["estimator"]: r for r in rows if (r["setting"], r["N"], r["T"]) == (setting, n, t)
        }
        b1, loo = group["maxrl b=1"], group["maxrl-loo"]
        binary = group.get("maxrl-binary")
        zmax = max(r["mean_error"] for r in group.values())
        cells = [
            setting,
            f"{b1['p']:.3g}",
            str(n),
            "N" if t == n else "N-1",
            f"{b1['total_variance']:.3g}",
            f"{loo['total_variance']:.3g}",
            f"{binary['total_variance']:.3g}" if binary else "–",
            f"{loo['total_variance'] / b1['total_variance']:.3f}",
            f"{binary['total_variance'] / loo['total_variance']:.3f}" if binary else "–",
            f"{b1['grad_norm']:.3g}",
            f"{zmax:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--reps``, ``--seed``, ``--group-sizes``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20_000, help="groups per cell (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--group-sizes", type=int, nargs="+", default=[4, 16, 64], help="N values (default 4 16 64)"
    )
    args = parser.parse_args(argv)
    if args.reps < 2:
        parser.error(f"--reps={args.reps} must be an integer >= 2")
    if any(n < 2 for n in args.group_sizes):
        parser.error(f"--group-sizes={args.group_sizes} must all be integers >= 2")
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = measure(args.reps, args.seed, args.group_sizes)
    print(table(rows))
    print(f"\n{args.reps} groups per cell, seed {args.seed}, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
