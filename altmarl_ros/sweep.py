"""k-sweeps: train and evaluate at several k, write a CSV and the plots of the report.

Every file is replaced atomically: each k's run directory as a whole
(runs.save), sweep.csv, baselines.json and the plots through a
temporary renamed into place, so a sweep killed at any point leaves complete
files. `check_sweep_dir` is what `altmarl sweep --out` checks before the first
run starts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from altmarl_ros.marl.alternation import AlternationConfig, alternate
from altmarl_ros.marl.checkpoint import atomic_file, atomic_write_text, is_temp_name, probe_writable
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.marl.evaluation import DEFAULT_EVAL_SEEDS, DEFAULT_ROLLOUTS, evaluate
from altmarl_ros.runs import list_briefly, save
from altmarl_ros.tasks import make_game

log = logging.getLogger(__name__)

SWEEP_CSV = "sweep.csv"
BASELINES_JSON = "baselines.json"
PLOTS = ("reward_vs_k.png", "ne_gap_vs_k.png", "mode_accuracy_vs_k.png", "glearn_time_vs_k.png")
_RUN_DIR_RE = re.compile(r"^k\d+(-s\d+)?$")  # a sweep's run directories: k<K> (one seed), k<K>-s<SEED>


def check_sweep_dir(out_dir: str | Path, force: bool = False) -> None:
    """Refuse an `--out` that holds a sweep (unless `force`) or other files; probe it writable; before any run."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AltmarlError(f"--out {out_dir} is a file; a sweep is written into a directory")
    if out_dir.is_dir():
        entries = sorted(name for name in os.listdir(out_dir) if not is_temp_name(name))
        ours = {SWEEP_CSV, BASELINES_JSON, *PLOTS}
        held = [name for name in entries if name in ours or _RUN_DIR_RE.match(name)]
        others = [name for name in entries if name not in held]
        if others:
            raise AltmarlError(f"--out {out_dir} holds files that are not part of an altmarl sweep "
                               f"({list_briefly(others)}); "
                               "choose a new or empty directory")
        if held and not force:
            raise AltmarlError(f"--out {out_dir} already holds a sweep ({list_briefly(held)}); pass --force to "
                               "overwrite it (each k's run is replaced once its new run is complete), or choose "
                               "another directory")
    try:
        probe_writable(out_dir)
    except OSError as exc:
        raise AltmarlError(f"--out {out_dir} is not writable: {exc.strerror or exc}; choose another "
                           "directory") from exc


@dataclass
class SlopeFit:
    slope: float
    intercept: float
    points_used: int
    points_dropped: int  # gaps <= 0 cannot go on log axes


def fit_loglog_slope(ks: list[int], gaps: list[float]) -> SlopeFit:
    """Least-squares slope of log(gap) against log(k) over the positive gaps."""
    pairs = [(k, g) for k, g in zip(ks, gaps, strict=True) if g > 0 and math.isfinite(g)]
    if len(pairs) < 2:
        return SlopeFit(float("nan"), float("nan"), len(pairs), len(ks) - len(pairs))
    x = np.log([p[0] for p in pairs])
    y = np.log([p[1] for p in pairs])
    slope, intercept = np.polyfit(x, y, 1)
    return SlopeFit(float(slope), float(intercept), len(pairs), len(ks) - len(pairs))


def run_dir_name(k: int, seed: int, seeds: int) -> str:
    """k<K> for a one-seed tabular sweep (as before), k<K>-s<SEED> otherwise."""
    return f"k{k}" if seeds == 1 else f"k{k}-s{seed}"


def train_tabular_job(task: str, overrides: dict[str, Any], config: AlternationConfig, k: int, seed: int,
                      eval_seeds: int, eval_rollouts: int) -> tuple[Any, dict[str, Any]]:
    """One tabular (k, seed) job: train, evaluate by the protocol; the result and its CSV row (a pure function)."""
    game = make_game(task, overrides)
    result = alternate(game, k, config, seed=seed, progress=False)
    report = evaluate(game, result.global_policy, result.local_policy, list(range(eval_seeds)), eval_rollouts)
    best = result.best
    row = {
        "k": k, "n": game.n, "seed": seed,
        "return_mean": report.return_mean, "return_std": report.return_std,
        "mode_accuracy": report.mode_accuracy,
        "global_gap": best.global_gap, "global_gap_ci95": best.global_gap_ci95,
        "local_gap": best.local_gap, "ne_gap": max(best.global_gap, best.local_gap),
        "k_ref": config.reference_k(game), "best_round": result.best_round, "best_start": best.start,
        "glearn_seconds": best.glearn_seconds, "glearn_iterations": best.glearn_iterations,
        "train_seconds": sum(r.round_seconds for r in result.rounds),
        "certificate_seconds": best.reference_seconds,
    }
    return result, row


def run_sweep(task: str, ks: list[int], out_dir: str | Path, seed: int = 0,
              overrides: dict[str, Any] | None = None, config: AlternationConfig | None = None,
              eval_seeds: int = len(DEFAULT_EVAL_SEEDS), eval_rollouts: int = DEFAULT_ROLLOUTS,
              progress: bool = True, seeds: list[int] | None = None, jobs: int = 1,
              ray_address: str | None = None) -> list[dict[str, Any]]:
    """Train one ALTERNATING-MARL run per (k, seed) (checkpoints in out_dir/k<K>[-s<SEED>]/), evaluate each.

    `jobs` processes (or the Ray cluster at `ray_address`) run them; rows, files and digits
    are those of the serial sweep (altmarl_ros/parallel.py).
    """
    from altmarl_ros.parallel import run_jobs

    out_dir = Path(out_dir)
    overrides = dict(overrides or {})
    config = config or AlternationConfig()
    seeds = list(seeds) if seeds else [seed]
    work = [(task, overrides, config, k, s, eval_seeds, eval_rollouts) for k in ks for s in seeds]
    rows: list[dict[str, Any] | None] = [None] * len(work)

    def done(index: int, outcome: tuple[Any, dict[str, Any]]) -> None:
        result, row = outcome
        save(result, out_dir / run_dir_name(row["k"], row["seed"], len(seeds)), task, overrides)
        rows[index] = row
        log.info("k=%d seed=%d: return %.2f ± %.2f, mode accuracy %.3f (start %s), global gap %.3f ± %.3f, "
                 "trained in %.1fs + certificate %.1fs", row["k"], row["seed"], row["return_mean"], row["return_std"],
                 row["mode_accuracy"], row["best_start"], row["global_gap"], row["global_gap_ci95"],
                 row["train_seconds"], row["certificate_seconds"])
        write_csv([r for r in rows if r is not None], out_dir / SWEEP_CSV)  # after every job: interrupted keeps rows

    run_jobs(train_tabular_job, work, workers=jobs, ray_address=ray_address, on_done=done, progress=progress,
             desc=f"sweep {task}")
    return [r for r in rows if r is not None]


def train_deep_job(task: str, overrides: dict[str, Any], config: Any, k: int, seed: int, eval_seeds: int,
                   eval_rollouts: int) -> tuple[Any, dict[str, Any]]:
    """One deep (k, seed) job: train, evaluate by the protocol next to a random dispatcher with its robots."""
    from altmarl_ros.marl.baselines import RandomGlobalPolicy
    from altmarl_ros.marl.deep.learners import deep_alternate
    from altmarl_ros.marl.rollouts import evaluate_env
    from altmarl_ros.tasks import make_env

    env = make_env(task, overrides)
    protocol = list(range(eval_seeds))
    result = deep_alternate(env, k, config, seed=seed, progress=False)
    report = evaluate_env(env, result.global_policy, result.local_policy, protocol, eval_rollouts)
    dispatcher = evaluate_env(env, RandomGlobalPolicy(env.num_global_actions, k, seed=seed), result.local_policy,
                              protocol, eval_rollouts)
    best = result.best
    row = {
        "k": k, "n": env.n, "seed": seed,
        "return_mean": report.return_mean, "return_std": report.return_std,
        "mode_accuracy": report.mode_accuracy,
        "random_dispatcher_return": dispatcher.return_mean,
        "random_dispatcher_mode_accuracy": dispatcher.mode_accuracy,
        "global_gap": best.global_gap, "global_gap_ci95": best.global_gap_ci95,
        "local_gap": best.local_gap, "local_gap_ci95": best.local_gap_ci95,
        "ne_gap": max(best.global_gap, best.local_gap), "best_round": result.best_round,
        "glearn_seconds": best.glearn_seconds, "train_seconds": result.seconds,
    }
    return result, row


def run_deep_sweep(task: str, ks: list[int], seeds: list[int], out_dir: str | Path,
                   overrides: dict[str, Any] | None = None, config: Any = None,
                   eval_seeds: int = len(DEFAULT_EVAL_SEEDS), eval_rollouts: int = DEFAULT_ROLLOUTS,
                   progress: bool = True, jobs: int = 1,
                   ray_address: str | None = None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Deep ALTERNATING-MARL per (k, training seed), evaluated by the protocol next to two baselines.

    Baselines: a random dispatcher with uniform robots (`random`), and a random
    dispatcher with each run's trained robots (`random_dispatcher`), which shows
    what the coordinator's k-subsample adds. Checkpoints in out_dir/k<K>-s<SEED>/.
    """
    from altmarl_ros.marl.baselines import RandomGlobalPolicy, UniformLocalPolicy
    from altmarl_ros.marl.deep.learners import DeepConfig
    from altmarl_ros.marl.rollouts import evaluate_env
    from altmarl_ros.parallel import run_jobs
    from altmarl_ros.tasks import make_env

    out_dir = Path(out_dir)
    overrides = dict(overrides or {})
    env = make_env(task, overrides)
    config = config or DeepConfig()
    protocol = list(range(eval_seeds))
    random_report = evaluate_env(env, RandomGlobalPolicy(env.num_global_actions, 1, seed=0),
                                 UniformLocalPolicy(env.num_local_actions), protocol, eval_rollouts)
    baselines = {"random_return_mean": random_report.return_mean, "random_return_std": random_report.return_std,
                 "random_mode_accuracy": random_report.mode_accuracy}
    work = [(task, overrides, config, k, seed, eval_seeds, eval_rollouts) for k in ks for seed in seeds]
    rows: list[dict[str, Any] | None] = [None] * len(work)

    def done(index: int, outcome: tuple[Any, dict[str, Any]]) -> None:
        result, row = outcome
        save(result, out_dir / f"k{row['k']}-s{row['seed']}", task, overrides)
        rows[index] = row
        log.info("k=%d seed=%d: return %.2f ± %.2f, mode accuracy %.3f (random dispatcher %.2f), trained in %.0fs",
                 row["k"], row["seed"], row["return_mean"], row["return_std"], row["mode_accuracy"],
                 row["random_dispatcher_return"], row["train_seconds"])
        write_csv([r for r in rows if r is not None], out_dir / SWEEP_CSV)

    run_jobs(train_deep_job, work, workers=jobs, ray_address=ray_address, on_done=done, progress=progress,
             desc=f"deep sweep {task}")
    atomic_write_text(out_dir / BASELINES_JSON, json.dumps(baselines, indent=2))
    return [r for r in rows if r is not None], baselines


def aggregate_by_k(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per k: the mean over training seeds of every numeric column, plus `<col>_seed_std` and `seeds`."""
    out = []
    for k in sorted({int(r["k"]) for r in rows}):
        group = [r for r in rows if int(r["k"]) == k]
        row: dict[str, Any] = {"k": k, "seeds": len(group)}
        for key in group[0]:
            if key in ("k", "seed") or isinstance(group[0][key], str):
                continue
            values = np.array([float(r[key]) for r in group])
            row[key] = float(values.mean())
            row[f"{key}_seed_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out.append(row)
    return out


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Replace the CSV atomically: a sweep killed while writing keeps the previous complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def plot_sweep(rows: list[dict[str, Any]], out_dir: str | Path, title: str = "",
               baselines: dict[str, float] | None = None) -> SlopeFit:
    """Write the four PNGs of PLOTS into out_dir; returns the NE-gap slope fit.

    Rows with several training seeds per k are averaged first (error bars: the
    spread over seeds); `baselines` adds the random and random-dispatcher lines.
    """
    if len({int(r["k"]) for r in rows}) < len(rows):
        rows = aggregate_by_k(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    ks = [int(r["k"]) for r in rows]
    gaps = [float(r["global_gap"]) for r in rows]
    fit = fit_loglog_slope(ks, gaps)

    def figure(name: str, ylabel: str, draw) -> None:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        draw(ax)
        ax.set_xlabel("k (robots observed per step)")
        ax.set_ylabel(ylabel)
        ax.set_title(title or f"n = {int(rows[0]['n'])}")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        with atomic_file(out_dir / name) as handle:
            fig.savefig(handle, dpi=120, format="png")
        plt.close(fig)

    def spread(key: str) -> list[float]:
        return [float(r.get(f"{key}_seed_std", r["return_std"] if key == "return_mean" else 0.0)) for r in rows]

    def draw_reward(ax) -> None:
        ax.errorbar(ks, [r["return_mean"] for r in rows], yerr=spread("return_mean"), marker="o", capsize=3,
                    label="learned (k-subsample)")
        if "random_dispatcher_return" in rows[0]:
            ax.errorbar(ks, [r["random_dispatcher_return"] for r in rows], yerr=spread("random_dispatcher_return"),
                        marker="s", capsize=3, label="random dispatcher, trained robots")
        if baselines:
            ax.axhline(baselines["random_return_mean"], color="gray", ls=":", label="random (both)")
        ax.set_xscale("log")
        ax.legend(fontsize=8)

    figure(PLOTS[0], "discounted system return", draw_reward)

    def draw_gap(ax) -> None:
        positive = [(k, g, float(r["global_gap_ci95"])) for k, g, r in zip(ks, gaps, rows, strict=True) if g > 0]
        if positive:
            ax.errorbar([p[0] for p in positive], [p[1] for p in positive], yerr=[p[2] for p in positive],
                        marker="o", capsize=3, label="measured global gap (95 % CI)")
        if math.isfinite(fit.slope):
            grid = np.array([min(ks), max(ks)], dtype=float)
            ax.plot(grid, np.exp(fit.intercept) * grid ** fit.slope, "--", label=f"fit: slope {fit.slope:.2f}")
            ref = positive[0][1] * (grid / positive[0][0]) ** -0.5
            ax.plot(grid, ref, ":", color="gray", label="slope -1/2 (theory)")
        if positive:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no positive gap measured (certificate off?)", ha="center", transform=ax.transAxes)

    figure(PLOTS[1], "global NE gap", draw_gap)

    def draw_mode(ax) -> None:
        ax.errorbar(ks, [r["mode_accuracy"] for r in rows], yerr=spread("mode_accuracy"), marker="o", capsize=3,
                    label="learned")
        if "random_dispatcher_mode_accuracy" in rows[0]:
            ax.plot(ks, [r["random_dispatcher_mode_accuracy"] for r in rows], marker="s",
                    label="random dispatcher")
        ax.set_xscale("log")
        ax.legend(fontsize=8)

    figure(PLOTS[2], "mode-tracking accuracy", draw_mode)

    def draw_time(ax) -> None:
        ax.plot(ks, [r["glearn_seconds"] for r in rows], marker="o")
        ax.set_yscale("log")

    figure(PLOTS[3], "G-LEARN seconds (one best response)", draw_time)
    return fit
