"""k-sweeps: train and evaluate at several k, write a CSV and the plots of the report."""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from altmarl_ros.marl.alternation import AlternationConfig, alternate
from altmarl_ros.marl.evaluation import DEFAULT_EVAL_SEEDS, DEFAULT_ROLLOUTS, evaluate
from altmarl_ros.tasks import make_game
from altmarl_ros.training import save_result

log = logging.getLogger(__name__)

SWEEP_CSV = "sweep.csv"
PLOTS = ("reward_vs_k.png", "ne_gap_vs_k.png", "mode_accuracy_vs_k.png", "glearn_time_vs_k.png")


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


def run_sweep(task: str, ks: list[int], out_dir: str | Path, seed: int = 0,
              overrides: dict[str, Any] | None = None, config: AlternationConfig | None = None,
              eval_seeds: int = len(DEFAULT_EVAL_SEEDS), eval_rollouts: int = DEFAULT_ROLLOUTS,
              progress: bool = True) -> list[dict[str, Any]]:
    """Train one ALTERNATING-MARL run per k (checkpoints in out_dir/k<K>/) and evaluate it by the protocol."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    overrides = dict(overrides or {})
    game = make_game(task, overrides)
    config = config or AlternationConfig()
    rows: list[dict[str, Any]] = []
    for k in tqdm(ks, desc=f"sweep {task}", disable=not progress):
        result = alternate(game, k, config, seed=seed, progress=progress)
        save_result(result, out_dir / f"k{k}", task, overrides)
        report = evaluate(game, result.global_policy, result.local_policy, list(range(eval_seeds)), eval_rollouts)
        best = result.best
        rows.append({
            "k": k, "n": game.n, "seed": seed,
            "return_mean": report.return_mean, "return_std": report.return_std,
            "mode_accuracy": report.mode_accuracy,
            "global_gap": best.global_gap, "global_gap_ci95": best.global_gap_ci95,
            "local_gap": best.local_gap, "ne_gap": max(best.global_gap, best.local_gap),
            "k_ref": config.reference_k(game), "best_round": result.best_round,
            "glearn_seconds": best.glearn_seconds, "glearn_iterations": best.glearn_iterations,
        })
        log.info("k=%d: return %.2f ± %.2f, mode accuracy %.3f, global gap %.3f ± %.3f, G-LEARN %.2fs", k,
                 report.return_mean, report.return_std, report.mode_accuracy, best.global_gap, best.global_gap_ci95,
                 best.glearn_seconds)
        write_csv(rows, out_dir / SWEEP_CSV)  # after every k, so an interrupted sweep keeps its rows
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def plot_sweep(rows: list[dict[str, Any]], out_dir: str | Path, title: str = "") -> SlopeFit:
    """Write the four PNGs of PLOTS into out_dir; returns the NE-gap slope fit."""
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
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)

    figure(PLOTS[0], "discounted system return",
           lambda ax: ax.errorbar(ks, [r["return_mean"] for r in rows], yerr=[r["return_std"] for r in rows],
                                  marker="o", capsize=3))

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
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)

    figure(PLOTS[1], "global NE gap", draw_gap)
    figure(PLOTS[2], "mode-tracking accuracy", lambda ax: ax.plot(ks, [r["mode_accuracy"] for r in rows], marker="o"))

    def draw_time(ax) -> None:
        ax.plot(ks, [r["glearn_seconds"] for r in rows], marker="o")
        ax.set_yscale("log")

    figure(PLOTS[3], "G-LEARN seconds (one best response)", draw_time)
    return fit
