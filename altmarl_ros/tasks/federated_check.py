"""The real federated optimisation check of the `federated` task (TASKS.md section 3), in numpy.

Why: the tabular game is a model; this runs its learned policies on an actual
federated problem and scores them on the TRUE global loss against
fixed-step-size servers.

Problem (one per seed). ``n_clients`` clients hold heterogeneous quadratics
``f_i(x) = 0.5 (x - c_i)^T A_i (x - c_i)`` in R^dim, A_i diagonal with entries
~ U[curvature_min, curvature_max] = U[0.5, 2], c_i = m + heterogeneity * z_i,
z_i ~ N(0, I), ||m|| = initial_distance = 3, x_0 = 0, dim = 10, n_clients = 100.
heterogeneity = 0.3 by default: the game assumes a fresh client's update is
nearly noise-free (curvature 0.1 << progress 1), which holds when the spread of
the client optima is small next to the initial distance. At heterogeneity =
1.0 (spread ~ sqrt(10) ~ the initial distance) sampling noise dominates and
the smallest fixed step wins; the check reports that regime just as well. The global loss is F = mean_i f_i, its
optimum x* is closed form; the score is the excess-loss ratio
``(F(x_t) - F*) / (F(x_0) - F*)``.

Clients (all act every round, as in the game). Client i keeps a local model
y_i. Local training is FedProx-style gradient descent toward the current global
model x: ``y <- y - lr (A_i (y - c_i) + prox (y - x))``, ``local_steps[a]`` =
(0, 2, 10) steps for (skip, light, heavy); compute = total local gradient
steps. The update a fully synced client would send is the prox point
``y*_i(x) = (A_i + prox I)^-1 (A_i c_i + prox x)``; client drift is
``||y_i - y*_i(x)|| / R0`` with R0 = mean_i ||y*_i(x_0) - x_0|| (the typical
fresh update at the start), discretised by ``drift_thresholds`` into the
game's drift levels. A skipped client's model goes stale as x moves; training
pulls it back (heavy more than light).

Server. Quality level = number of ``quality_thresholds`` (decreasing) that the
excess-loss ratio is at or below (0 = initial loss, Q-1 = near optimal). This
uses F* and is an oracle available in simulation; it only feeds the policy's
state, never the clients. Each round, in the game's timing:

1. every client measures its drift level; s_g = (q, e) with e the step-size
   level in force (``initial_step_level`` in round 0 for the learned server);
2. the server draws a fresh uniform k-subset of clients (without
   replacement), forms the count vector F of their drift levels and picks the
   next round's step level ``a_g = pi_g(s_g, F)`` (GlobalPolicy.act);
3. each client draws a ~ pi_l(. | d_i, s_g) and trains;
4. the server aggregates the sampled clients' models with the step in force:
   ``x <- x + eta_e * mean_{i in S}(y_i - x)``.

Measured (runs trained with config/federated.yaml, seed 0; check defaults,
seeds 0..9, AUC = mean excess-loss ratio over the 50 rounds, mean ± std):
k=5: learned 0.0226 ± 0.0023; fixed eta = 0.5/1/1.5/2 with light clients
0.0449/0.0289/0.0357/0.1639, with the learned clients 0.0368/0.0149/0.0160/0.0323.
The learned server beats every fixed step with light clients and the largest
and smallest with learned clients, at about half the compute, but NOT the best
fixed step (eta = 1 or 1.5 with the learned clients). k=20: learned 0.0236 vs
best fixed 0.0059. The tabular model overrates the gain of adapting the step
on this problem; the sample changes the learned server's choice in ~8 % of
rounds.

Baselines hold e fixed at each level, with clients either always `light` or
following the trained client policy. Every method of a seed sees the same
problem and the same sampling stream (common random numbers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.policies import GlobalPolicy, check_local_policy
from altmarl_ros.marl.population import inverse_cdf_draw
from altmarl_ros.tasks.federated_problem import (
    LOCAL_ACTIONS,
    FederatedCheckConfig,
    Problem,
    aggregate,
    drift_levels,
    global_state_index,
    local_training,
    loss,
    make_problem,
    quality_level,
)

LIGHT = LOCAL_ACTIONS.index("light")


@dataclass
class MethodResult:
    name: str
    final_mean: float
    final_std: float
    auc_mean: float
    auc_std: float
    compute_mean: float  # local gradient steps per client per round
    per_seed_final: list[float]
    per_seed_auc: list[float]
    step_level_counts: list[int] = field(default_factory=list)  # how often each step level was in force


@dataclass
class FederatedReport:
    methods: list[MethodResult]
    seeds: list[int]
    k: int
    config: dict
    step_sizes: list[float]
    # learned server: mean sampled drift level when it chose each step level (NaN if never chosen); confounded
    # by the quality level, which also moves the choice
    drift_when_choosing: list[float] = field(default_factory=list)
    # learned server: fraction of rounds where the sample changed its choice (vs an all-fresh sample, same s_g)
    sample_changed_choice: float = float("nan")

    def method(self, name: str) -> MethodResult:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(f"no method {name!r}; methods: {[m.name for m in self.methods]}")


def _check_config(cfg: FederatedCheckConfig, game: TabularGame) -> None:
    D = game.num_local_states
    Q = game.num_global_states // game.num_global_actions
    if cfg.n_clients < 1 or cfg.dim < 1 or cfg.rounds < 1:
        raise GameValidationError(
            f"n_clients, dim and rounds must be >= 1, got {cfg.n_clients}, {cfg.dim}, {cfg.rounds}")
    if not 0 < cfg.curvature_min <= cfg.curvature_max or not np.isfinite(cfg.curvature_max):
        raise GameValidationError(
            f"need 0 < curvature_min <= curvature_max, got {cfg.curvature_min}, {cfg.curvature_max}")
    positive = ("local_lr", "profile_concentration")
    for name in ("initial_distance", "heterogeneity", "prox", *positive):
        value = getattr(cfg, name)
        if not np.isfinite(value) or value < 0 or (value == 0 and name in positive):
            bound = "> 0" if name in positive else ">= 0"
            raise GameValidationError(f"{name} must be finite and {bound}, got {value}")
    if cfg.initial_distance == 0 and cfg.heterogeneity == 0:
        raise GameValidationError("initial_distance and heterogeneity are both 0: x_0 is already optimal")
    if len(cfg.local_steps) != len(LOCAL_ACTIONS) or any(s < 0 for s in cfg.local_steps):
        raise GameValidationError(f"local_steps needs one count >= 0 per client action {LOCAL_ACTIONS}, "
                                  f"got {cfg.local_steps}")
    _check_thresholds("drift_thresholds", cfg.drift_thresholds, D - 1, increasing=True)
    _check_thresholds("quality_thresholds", cfg.quality_thresholds, Q - 1, increasing=False)
    if len(cfg.initial_drift) != D or any(not np.isfinite(v) or v < 0 for v in cfg.initial_drift):
        raise GameValidationError(f"initial_drift needs {D} values >= 0 (one per drift level), got {cfg.initial_drift}")
    if not 0 <= cfg.initial_step_level < game.num_global_actions:
        raise GameValidationError(
            f"initial_step_level must be in [0, {game.num_global_actions}), got {cfg.initial_step_level}")


def _check_thresholds(name: str, values: tuple[float, ...], count: int, increasing: bool) -> None:
    values = np.asarray(values, dtype=float)
    if len(values) != count:
        raise GameValidationError(f"{name} needs {count} values (one fewer than the game's levels), got {len(values)}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise GameValidationError(f"{name} must be finite and > 0, got {tuple(values)}")
    steps = np.diff(values)
    if np.any(steps <= 0 if increasing else steps >= 0):
        order = "increasing" if increasing else "decreasing"
        raise GameValidationError(f"{name} must be strictly {order}, got {tuple(values)}")


def _check_policies(game: TabularGame, global_policy: GlobalPolicy, local_policy: np.ndarray) -> np.ndarray:
    if game.name != "federated":
        raise GameValidationError(f"the federated check needs a policy for the federated game, got game {game.name!r}")
    local_policy = check_local_policy(game, local_policy)
    if global_policy.num_local_states != game.num_local_states:
        raise GameValidationError(
            f"global policy observes {global_policy.num_local_states} client levels, the game has "
            f"{game.num_local_states}")
    actions = global_policy.actions
    if actions.shape[0] != game.num_global_states or actions.min() < 0 or actions.max() >= game.num_global_actions:
        raise GameValidationError(
            f"global policy table must have {game.num_global_states} rows of actions in "
            f"[0, {game.num_global_actions}), got shape {actions.shape}, range [{actions.min()}, {actions.max()}]")
    return local_policy


@dataclass
class _Run:
    excess: np.ndarray  # (rounds + 1,) excess-loss ratio, index 0 = start
    compute: float
    step_counts: np.ndarray
    drift_sum: np.ndarray  # per chosen step level: sum of mean sampled drift
    choices: np.ndarray
    changed: int  # rounds where the sample changed the learned server's choice


def _run(problem: Problem, cfg: FederatedCheckConfig, game: TabularGame, step_sizes: np.ndarray,
         global_policy: GlobalPolicy, k: int, local_policy: np.ndarray | None, fixed_level: int | None,
         rng: np.random.Generator) -> _Run:
    """One federated run; `fixed_level` None = learned server, `local_policy` None = clients always light."""
    E, D = game.num_global_actions, game.num_local_states
    A, c, n = problem.A, problem.c, cfg.n_clients
    x = np.zeros(cfg.dim)
    y = problem.y0.copy()
    level = cfg.initial_step_level if fixed_level is None else fixed_level
    excess = np.zeros(cfg.rounds + 1)
    span = problem.loss_0 - problem.loss_star
    excess[0] = 1.0
    compute = 0
    step_counts, drift_sum, choices = np.zeros(E, dtype=np.int64), np.zeros(E), np.zeros(E, dtype=np.int64)
    changed = 0
    all_fresh = np.zeros((1, D), dtype=np.int64)
    all_fresh[0, 0] = k
    steps_per_action = np.asarray(cfg.local_steps)
    for t in range(cfg.rounds):
        drift_level = drift_levels(problem, cfg, x, y)
        quality = quality_level(cfg, excess[t])
        s_g = int(global_state_index(quality, level, E))
        sampled = rng.choice(n, size=k, replace=False)
        counts = np.bincount(drift_level[sampled], minlength=D)
        next_level = level
        if fixed_level is None:
            next_level = int(global_policy.act(np.array([s_g]), counts[None, :])[0])
            choices[next_level] += 1
            drift_sum[next_level] += drift_level[sampled].mean()
            changed += int(next_level != int(global_policy.act(np.array([s_g]), all_fresh)[0]))
        if local_policy is None:
            actions = np.full(n, LIGHT)
        else:
            probs = local_policy[drift_level, s_g]  # (n, A)
            actions = inverse_cdf_draw(rng, probs)
        tau = steps_per_action[actions]
        compute += int(tau.sum())
        local_training(problem, cfg, y, x, tau)
        step_counts[level] += 1
        x = aggregate(x, y, sampled, step_sizes[level])
        global_loss = loss(A, c, x)
        if not np.isfinite(global_loss):
            excess[t + 1:] = np.inf
            break
        excess[t + 1] = (global_loss - problem.loss_star) / span
        level = next_level
    return _Run(excess, compute / (n * cfg.rounds), step_counts, drift_sum, choices, changed)


def federated_check_policies(game: TabularGame, global_policy: GlobalPolicy, local_policy: np.ndarray,
                             seeds: list[int], rounds: int | None = None,
                             config: FederatedCheckConfig | None = None) -> FederatedReport:
    """Learned (pi_g, pi_l) vs fixed step sizes on real quadratic federated problems, one per seed."""
    cfg = config or FederatedCheckConfig()
    if rounds is not None:
        cfg = FederatedCheckConfig(**{**asdict(cfg), "rounds": int(rounds)})
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise GameValidationError("the federated check needs at least one seed")
    local_policy = _check_policies(game, global_policy, local_policy)
    _check_config(cfg, game)
    k = global_policy.k
    if k > cfg.n_clients:
        raise GameValidationError(f"the policy samples k={k} clients but the check has n_clients={cfg.n_clients}")
    step_sizes = np.asarray(game.config["step_sizes"], dtype=float)
    E = game.num_global_actions
    names = ["learned"] + [f"fixed eta={s:g}, clients light" for s in step_sizes] + \
        [f"fixed eta={s:g}, learned clients" for s in step_sizes]
    runs: dict[str, list[_Run]] = {name: [] for name in names}
    for seed in seeds:
        problem = make_problem(cfg, game.num_local_states, np.random.default_rng([seed, 0]))
        for name in names:
            if name == "learned":
                level, clients = None, local_policy
            else:
                level = int(np.argmax([name.startswith(f"fixed eta={s:g},") for s in step_sizes]))
                clients = local_policy if name.endswith("learned clients") else None
            rng = np.random.default_rng([seed, 1])
            runs[name].append(_run(problem, cfg, game, step_sizes, global_policy, k, clients, level, rng))
    methods = []
    for name in names:
        finals = np.array([r.excess[-1] for r in runs[name]])
        aucs = np.array([r.excess[1:].mean() for r in runs[name]])
        methods.append(MethodResult(
            name, float(finals.mean()), _std(finals), float(aucs.mean()), _std(aucs),
            float(np.mean([r.compute for r in runs[name]])), finals.tolist(), aucs.tolist(),
            np.sum([r.step_counts for r in runs[name]], axis=0).tolist()))
    learned = runs["learned"]
    chosen = np.sum([r.choices for r in learned], axis=0)
    drift_sum = np.sum([r.drift_sum for r in learned], axis=0)
    drift_when = [float(drift_sum[e] / chosen[e]) if chosen[e] else float("nan") for e in range(E)]
    changed = sum(r.changed for r in learned) / max(1, int(chosen.sum()))
    return FederatedReport(methods, seeds, k, asdict(cfg), step_sizes.tolist(), drift_when, changed)


def federated_check(trained, seeds: list[int], rounds: int | None = None,
                    config: FederatedCheckConfig | None = None) -> FederatedReport:
    """The check for a loaded run (an altmarl_ros.runs.Run)."""
    return federated_check_policies(trained.game, trained.global_policy, trained.local_policy, seeds, rounds, config)


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def format_report(report: FederatedReport) -> str:
    """A table of excess-loss ratios (final and area under the curve), mean ± std over seeds."""
    cfg = report.config
    lines = [f"federated check: {cfg['n_clients']} quadratic clients in R^{cfg['dim']}, k={report.k} sampled per "
             f"round, {cfg['rounds']} rounds, {len(report.seeds)} seeds",
             "excess-loss ratio (F(x) - F*) / (F(x0) - F*), mean ± std over seeds; lower is better",
             f"{'method':<34} {'final':>19} {'AUC (mean over rounds)':>24} {'steps/client/round':>19}"]
    for m in report.methods:
        lines.append(f"{m.name:<34} {m.final_mean:>9.4f} ± {m.final_std:<7.4f} {m.auc_mean:>13.4f} ± "
                     f"{m.auc_std:<8.4f} {m.compute_mean:>19.2f}")
    learned = report.method("learned")
    usage = ", ".join(f"eta={s:g}: {c}" for s, c in zip(report.step_sizes, learned.step_level_counts, strict=True))
    lines.append(f"learned server, rounds per step size: {usage}")
    drift = ", ".join(f"eta={s:g}: {d:.2f}" for s, d in zip(report.step_sizes, report.drift_when_choosing,
                                                            strict=True))
    lines.append(f"learned server, mean sampled drift level when choosing: {drift}")
    lines.append(f"learned server, rounds where the k-sample changed the step (vs an all-fresh sample): "
                 f"{report.sample_changed_choice:.1%}")
    return "\n".join(lines)
