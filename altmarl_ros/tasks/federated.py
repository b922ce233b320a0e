"""The `federated` task (TASKS.md section 3): a server tunes its aggregation step size from k sampled clients.

Players. The server (global agent) trains a shared model with ``n`` clients
(local agents) and sees only ``k`` of them per round. Clients have
``drift_levels`` = D states (0 = fresh: the model the client would send is what
a fully synced client would send; D-1 = very stale / drifted) and three actions,
``skip``, ``light`` (a few local gradient steps), ``heavy`` (many steps).

Structure forced by the game class (ALGORITHM.md section 1). P_g(s_g'|s_g,a_g)
cannot see the population and P_l, r_l cannot see a_g. So the step size chosen
by the server must reach the clients through the *global state*:

* ``s_g = (q, e)``, index ``q * E + e``: q in 0..Q-1 is the global model quality
  level (0 = initial loss, Q-1 = near optimal), e in 0..E-1 is the step-size
  level *in force this round* (announced by the server in the previous round).
* ``a_g`` in 0..E-1 is the step-size level for the next round:
  ``e' = a_g`` with probability ``step_follow_prob`` (default 1), else e stays.

With that, "the best step size depends on the population's drift" is a
statement about the shared reward: the improvement of the global loss that
client i's update brings when aggregated with step eta_e is its local reward,
which depends on its own drift and on s_g = (q, e). The system reward
``r_g + (1/n) sum_i r_l`` is then the total improvement minus compute, and the
server, choosing e for the next round from the k-sample F, must guess how
drifted the population will be: observing more clients helps.

Numbers (defaults; every one is a config field). eta = step_sizes[e] =
(0.5, 1.0, 1.5, 2.0); room(q) = 1 - q / Q (how much of the initial loss is
left to remove, (1, .8, .6, .4, .2) for Q = 5).

Client reward (contribution minus compute), a second-order model of one
aggregation step: progress in the descent direction (which shrinks as the
model improves) minus an error term that grows with eta^2 and with the drift
left after this round's training (it does not shrink with the loss: client
heterogeneity and staleness stay)::

    r_l(d, (q, e), a) = contribution_scale * (room(q) * eta * progress[a]
                        - eta^2 * (curvature + drift_curvature * d * residual_drift[a]))
                        - compute_cost[a]

progress = (0.1, 0.6, 1.0), residual_drift = (1.0, 0.8, 0.5) for (skip, light,
heavy), curvature = 0.1, drift_curvature = 0.8, compute_cost = (0, 0.05, 0.25),
contribution_scale = 1. One client's best eta maximises ``eta P - eta^2 K``:
eta* = P / (2K). At q = 0 a fresh heavy client (d=0, K=0.1) has eta* = 5, so the
largest step 2.0 is best (1.6 before cost); heavy with d=1 (K=0.5) has eta* = 1;
d=3 (K=1.3) has eta* = 0.38, and eta = 2 gives 2 - 4 * 1.3 = -3.2: a large step
with drifted clients *degrades* quality, eta = 0.5 gives +0.175. Light clients:
eta* = 3 (d=0), 0.4 (d=1). The population's best step, the argmax of the
average of these curves, moves from the largest step to the smallest as the
population drifts (checked in test/test_federated.py on the arrays), and it
shrinks as q rises (small steps near the optimum).

Client drift transition P_l(d' | d, (q, e), a): first training reduces drift
(with probability ``reduce_prob[a]`` = (0, 0.3, 0.6) the level drops by
``reduce_levels[a]`` = (0, 1, 1), floored at 0), then the global model moves
and the client becomes staler: +1 level (capped at D-1) with probability
``drift_base_prob + drift_step_prob * eta`` = 0.05 + 0.1 eta (capped at 1): a
skipped client only drifts, larger server steps make everyone staler. The
rates are slowish on purpose: a population's drift persists for many rounds, so
a sample of it predicts the next round.

Server transition and reward. The quality level cannot see the population
here, so it carries the drift-independent part of the effect of the step in
force: up one level with probability ``quality_up_base + quality_up_step * eta``
= 0.05 + 0.05 eta, down one with probability ``quality_down_step2 * eta^2`` =
0.02 eta^2 (overshoot). The server reward is the expected improvement of the
quality level, ``r_g((q, e), a_g) = quality_reward * (P(up) - P(down))``
(zero where a move is blocked at the ends), quality_reward = 1.

Initial distribution: q = 0 (the initial model) with the step-size level
uniform; client drift profile ~ Dirichlet(profile_concentration * 1_D) with
profile_concentration = 0.3, so populations range from mostly fresh to mostly
drifted. n = 1000, gamma = 0.95, horizon = 50.

Measured in the tabular pipeline (defaults, n = 1000, alternate() with 3
rounds, seed 0; evaluation 15 seeds x 50 rollouts): discounted return of the learned pair vs the best
constant step (same client policy, best is eta = 1): k=1 4.83 vs 4.83,
k=5 5.37 vs 5.12, k=20 5.77 vs 5.15 (std of per-seed means about 0.3), so the
coordinator uses the sample, and more so as k grows.

`federated_check.py` runs the learned policies on a real federated
optimisation problem (quadratic clients in numpy, `federated_problem.py`).

Calibrated numbers (``calibration: real``, off by default). Every array except
the step-level move is then measured on that real problem by
`federated_calibration.calibrate`: exploring behaviour runs (uniform random
step level and client actions, k = ``calibration_k`` clients aggregated per
round, seeds 1000..1199, disjoint from the check's 0..9) give P_l(d' | d, (q,
e), a) and the quality part of P_g as smoothed empirical frequencies, and a
least-squares fit of the per-round improvement of the true excess-loss ratio
gives r_g + (1/n) sum r_l = minus the predicted excess-loss ratio after the
round (in percent of the initial excess, ``calibration_reward_scale`` = 100),
so the return is minus a discounted area under the loss curve. The numbers
from contribution_scale to quality_reward are then unused. Measured (check
seeds 0..9, AUC): k=5 learned 0.0203 (hand-written game 0.0226) vs best fixed
eta=1 light 0.0289, eta=1.5 learned clients 0.0156; k=20 0.0157 vs 0.0200 /
0.0061; k=1 0.1271 vs 0.0595 / 0.0514. The calibrated game beats every fixed
step with always-light clients at k=5 and k=20 but not the best fixed step
with the learned clients, and it is worse at k=1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from altmarl_ros.marl import budget
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.tasks.federated_calibration import calibrate
from altmarl_ros.tasks.federated_problem import LOCAL_ACTIONS, global_state_index

CALIBRATIONS = ("none", "real")


@dataclass(frozen=True)
class FederatedConfig:
    n: int = 1000
    gamma: float = 0.95
    horizon: int = 50
    drift_levels: int = 4  # D client states
    quality_levels: int = 5  # Q server quality levels
    step_sizes: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)  # E aggregation step sizes (server actions)
    step_follow_prob: float = 1.0  # P(e' = a_g); otherwise the step in force stays
    # client reward: contribution_scale * (room(q) * eta * progress[a] - eta^2 * (curvature + drift_curvature
    # * d * residual_drift[a])) - compute_cost[a]; actions (skip, light, heavy)
    contribution_scale: float = 1.0
    progress: tuple[float, ...] = (0.1, 0.6, 1.0)
    residual_drift: tuple[float, ...] = (1.0, 0.8, 0.5)
    curvature: float = 0.1
    drift_curvature: float = 0.8
    compute_cost: tuple[float, ...] = (0.0, 0.05, 0.25)
    # client drift: training drops `reduce_levels[a]` levels w.p. `reduce_prob[a]`, then +1 level
    # w.p. drift_base_prob + drift_step_prob * eta
    reduce_prob: tuple[float, ...] = (0.0, 0.3, 0.6)
    reduce_levels: tuple[int, ...] = (0, 1, 1)
    drift_base_prob: float = 0.05
    drift_step_prob: float = 0.1
    # server quality: up w.p. quality_up_base + quality_up_step * eta, down w.p. quality_down_step2 * eta^2
    quality_up_base: float = 0.05
    quality_up_step: float = 0.05
    quality_down_step2: float = 0.02
    quality_reward: float = 1.0
    profile_concentration: float = 0.3
    # "none": the hand-written numbers above; "real": P_l, the quality part of P_g and r_l measured on the real
    # federated problem of federated_problem.py (tasks/federated_calibration.py); the numbers from contribution_scale
    # to quality_reward are then unused
    calibration: str = "none"
    calibration_k: int = 5  # clients aggregated per round in the calibration runs (train with the same --k)
    calibration_seeds: int = 200  # behaviour runs, seeds calibration_first_seed, ... (disjoint from the check's 0..9)
    calibration_first_seed: int = 1000
    calibration_reward_scale: float = 100.0  # r_l in percent of the initial excess loss
    calibration_step_cost: float = 0.0  # reward units per local gradient step (the check scores the loss only)


def _check_config(c: FederatedConfig) -> None:
    if c.drift_levels < 2:
        raise GameValidationError(f"drift_levels must be >= 2 (fresh and drifted), got {c.drift_levels}")
    if c.quality_levels < 2:
        raise GameValidationError(f"quality_levels must be >= 2, got {c.quality_levels}")
    if len(c.step_sizes) < 1:
        raise GameValidationError("step_sizes needs at least one aggregation step size (the server's actions)")
    if any(not np.isfinite(s) or s <= 0 for s in c.step_sizes):
        raise GameValidationError(f"step_sizes must be finite and > 0, got {c.step_sizes}")
    per_action = ("progress", "residual_drift", "compute_cost", "reduce_prob", "reduce_levels")
    for name in per_action:
        value = getattr(c, name)
        if len(value) != len(LOCAL_ACTIONS):
            raise GameValidationError(f"{name} needs one value per client action {LOCAL_ACTIONS}, got {value}")
        if any(not np.isfinite(v) or v < 0 for v in value):
            raise GameValidationError(f"{name} must be finite and >= 0, got {value}")
    for name in ("reduce_prob",):
        if any(v > 1 for v in getattr(c, name)):
            raise GameValidationError(f"{name} are probabilities in [0, 1], got {getattr(c, name)}")
    nonnegative = ("contribution_scale", "curvature", "drift_curvature", "drift_base_prob", "drift_step_prob",
                   "quality_up_base", "quality_up_step", "quality_down_step2", "quality_reward",
                   "step_follow_prob")
    for name in nonnegative:
        value = getattr(c, name)
        if not np.isfinite(value) or value < 0:
            raise GameValidationError(f"{name} must be finite and >= 0, got {value}")
    if c.step_follow_prob > 1:
        raise GameValidationError(f"step_follow_prob is a probability in [0, 1], got {c.step_follow_prob}")
    if c.calibration not in CALIBRATIONS:
        raise GameValidationError(f"calibration must be one of {CALIBRATIONS}, got {c.calibration!r}")
    if c.calibration_k < 1 or c.calibration_seeds < 1 or c.calibration_first_seed < 0:
        raise GameValidationError(f"calibration_k and calibration_seeds must be >= 1 and calibration_first_seed >= 0, "
                                  f"got {c.calibration_k}, {c.calibration_seeds}, {c.calibration_first_seed}")
    if not np.isfinite(c.calibration_reward_scale) or c.calibration_reward_scale <= 0:
        raise GameValidationError(f"calibration_reward_scale must be finite and > 0, got {c.calibration_reward_scale}")
    if not np.isfinite(c.calibration_step_cost) or c.calibration_step_cost < 0:
        raise GameValidationError(f"calibration_step_cost must be finite and >= 0, got {c.calibration_step_cost}")
    if not c.profile_concentration > 0:
        raise GameValidationError(f"profile_concentration must be > 0, got {c.profile_concentration}")
    for eta in c.step_sizes:
        up = c.quality_up_base + c.quality_up_step * eta
        down = c.quality_down_step2 * eta ** 2
        if up + down > 1:
            raise GameValidationError(
                f"quality move probabilities exceed 1 at step size {eta}: up {up:.3g} + down {down:.3g}; "
                "lower quality_up_base, quality_up_step or quality_down_step2")


def client_contribution(config: FederatedConfig) -> np.ndarray:
    """contribution[d, q, e, a] before compute cost (see the module docstring), shape (D, Q, E, A)."""
    D, Q = config.drift_levels, config.quality_levels
    eta = np.asarray(config.step_sizes, dtype=float)[None, None, :, None]
    d = np.arange(D, dtype=float)[:, None, None, None]
    room = (1.0 - np.arange(Q) / Q)[None, :, None, None]
    progress = np.asarray(config.progress, dtype=float)[None, None, None, :]
    residual = np.asarray(config.residual_drift, dtype=float)[None, None, None, :]
    error = config.curvature + config.drift_curvature * d * residual
    return config.contribution_scale * (room * eta * progress - eta ** 2 * error)


def build_bytes(config: FederatedConfig) -> int:
    """Peak of build_game: the game's arrays, its validation, and the per-factor tables they are built from."""
    D, Q, E, A = config.drift_levels, config.quality_levels, len(config.step_sizes), len(LOCAL_ACTIONS)
    G = Q * E
    factors = budget.F8 * (Q * E * Q + E * E * E + D * A * D + E * D * D + D * E * A * D + Q * E)
    return (budget.game_arrays_bytes(G, E, D, A) + budget.game_validation_bytes(G, E, D, A) + factors
            + budget.SMALL_BYTES)


def build_game(config: FederatedConfig) -> TabularGame:
    """The federated game as validated arrays (layouts in marl/game.py, numbers in the module docstring)."""
    _check_config(config)
    D, Q, E = config.drift_levels, config.quality_levels, len(config.step_sizes)
    budget.check(build_bytes(config), f"the federated game with drift_levels={D}, quality_levels={Q} and {E} step "
                 f"sizes ({Q * E} server states; P_l has {D}x{Q * E}x{len(LOCAL_ACTIONS)}x{D} entries, P_g "
                 f"{Q * E}x{E}x{Q * E})", "reduce drift_levels, quality_levels or the number of step_sizes")
    if config.calibration == "real":
        return _build_calibrated_game(config)
    D, Q, E, A = config.drift_levels, config.quality_levels, len(config.step_sizes), len(LOCAL_ACTIONS)
    G = Q * E
    eta = np.asarray(config.step_sizes, dtype=float)

    # global: quality moves with the step in force, the step level follows the action
    quality_move = np.zeros((Q, E, Q))
    for q in range(Q):
        for e in range(E):
            up = config.quality_up_base + config.quality_up_step * eta[e] if q < Q - 1 else 0.0
            down = config.quality_down_step2 * eta[e] ** 2 if q > 0 else 0.0
            quality_move[q, e, min(q + 1, Q - 1)] += up
            quality_move[q, e, max(q - 1, 0)] += down
            quality_move[q, e, q] += 1.0 - up - down
    global_transition = _global_transition(quality_move, _step_move(config))
    expected_quality_gain = quality_move @ np.arange(Q) - np.arange(Q)[:, None]  # (Q, E)
    global_reward = np.repeat(config.quality_reward * expected_quality_gain.reshape(G, 1), E, axis=1)

    # local: training reduces drift, then the moving global model adds drift
    train = np.zeros((D, A, D))
    for d in range(D):
        for a in range(A):
            p = config.reduce_prob[a]
            train[d, a, max(d - int(config.reduce_levels[a]), 0)] += p
            train[d, a, d] += 1.0 - p
    stale = np.zeros((E, D, D))
    for e in range(E):
        p = min(1.0, config.drift_base_prob + config.drift_step_prob * eta[e])
        for d in range(D):
            stale[e, d, min(d + 1, D - 1)] += p
            stale[e, d, d] += 1.0 - p
    local_by_step = np.einsum("dam,emn->dean", train, stale)  # (D, E, A, D')
    local_transition = np.broadcast_to(local_by_step[:, None], (D, Q, E, A, D)).reshape(D, G, A, D)

    reward = client_contribution(config) - np.asarray(config.compute_cost, dtype=float)
    local_reward = reward.reshape(D, G, A)

    return _game(config, global_transition, local_transition, global_reward, local_reward)


def _step_move(config: FederatedConfig) -> np.ndarray:
    """step_move[e, a_g, e']: the step level follows the action w.p. step_follow_prob, else stays."""
    E = len(config.step_sizes)
    step_move = np.zeros((E, E, E))
    for e in range(E):
        for a in range(E):
            step_move[e, a, a] += config.step_follow_prob
            step_move[e, a, e] += 1.0 - config.step_follow_prob
    return step_move


def _global_transition(quality_move: np.ndarray, step_move: np.ndarray) -> np.ndarray:
    """P_g[(q,e), a, (q',e')] = quality_move[q, e, q'] * step_move[e, a, e']."""
    Q, E = quality_move.shape[:2]
    return np.einsum("qem,eaf->qeamf", quality_move, step_move).reshape(Q * E, E, Q * E)


def _game(config: FederatedConfig, global_transition, local_transition, global_reward, local_reward) -> TabularGame:
    D, Q, E = config.drift_levels, config.quality_levels, len(config.step_sizes)
    init_global = np.zeros(Q * E)
    init_global[global_state_index(0, np.arange(E), E)] = 1.0 / E
    return TabularGame(
        name="federated",
        global_transition=global_transition,
        local_transition=np.ascontiguousarray(local_transition),
        global_reward=global_reward,
        local_reward=local_reward,
        gamma=config.gamma,
        n=config.n,
        horizon=config.horizon,
        init_global=init_global,
        init_local_alpha=np.full(D, config.profile_concentration),
        config=asdict(config),
    )


@lru_cache(maxsize=8)
def _calibration(k: int, seeds: tuple[int, ...], step_sizes: tuple[float, ...], drift_levels: int,
                 quality_levels: int):
    return calibrate(seeds=seeds, k=k, step_sizes=step_sizes, drift_levels=drift_levels,
                     quality_levels=quality_levels)


def _build_calibrated_game(config: FederatedConfig) -> TabularGame:
    """The game with P_l, the quality part of P_g and r_l measured on the real problem (federated_calibration)."""
    D, Q, E, A = config.drift_levels, config.quality_levels, len(config.step_sizes), len(LOCAL_ACTIONS)
    G = Q * E
    seeds = tuple(range(config.calibration_first_seed, config.calibration_first_seed + config.calibration_seeds))
    cal = _calibration(config.calibration_k, seeds, tuple(float(s) for s in config.step_sizes), D, Q)
    global_transition = _global_transition(cal.quality_transition, _step_move(config))
    scale = config.calibration_reward_scale
    # r_g + (1/n) sum_i r_l = minus the predicted excess-loss ratio after the round: r_g is the behaviour
    # average of the (q, e) cell, r_l what a (d, a) client adds beyond that average, minus compute
    predicted_next = cal.level_value[:, None] - cal.mean_improvement  # (Q, E)
    global_reward = np.repeat(-scale * predicted_next.reshape(G, 1), E, axis=1)
    cost = config.calibration_step_cost * np.asarray(cal.local_steps, dtype=float)
    reward = scale * (cal.contribution - cal.mean_improvement[None, :, :, None]) - cost  # (D, Q, E, A)
    return _game(config, global_transition, cal.local_transition.reshape(D, G, A, D), global_reward,
                 reward.reshape(D, G, A))
