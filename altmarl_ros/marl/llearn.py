"""L-LEARN: the local agents' best response in the MDP induced by a frozen global policy.

A representative robot has state (s_g, s_l) and action a_l (ALGORITHM.md section 4):
s_l' ~ P_l(. | s_l, s_g, a_l) and s_g' ~ sum_a P(a_g = a | s_g) P_g(. | s_g, a), where
P(a_g | s_g) is how often the frozen global policy, fed k-subsamples of the
population, takes each action in each global state. That frequency comes from
the mean field: the population simulated under the current (pi_g, pi_l) with
its real coupling to s_g (see `mean_field` for its two modes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altmarl_ros.marl import budget
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.evaluation import rollout
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.policies import GlobalPolicy, check_local_policy, greedy_local_policy, softmax_local_policy
from altmarl_ros.marl.population import inverse_cdf_draw


@dataclass
class MeanField:
    """Stationary statistics of the population under a policy pair."""

    global_state_freq: np.ndarray  # (G,)
    action_given_state: np.ndarray  # (G, B): P(a_g | s_g)
    profile_given_state: np.ndarray  # (G, L): mean local state distribution when s_g = g
    profile: np.ndarray  # (L,): overall mean local state distribution

    def induced_global_transition(self, game: TabularGame) -> np.ndarray:
        """P(s_g' | s_g) with a_g drawn as the frozen global policy takes it, shape (G, G)."""
        return np.einsum("gb,gbh->gh", self.action_given_state, game.global_transition)


MEAN_FIELD_MODES = ("episodic", "stationary")


def mean_field(game: TabularGame, global_policy: GlobalPolicy, local_policy: np.ndarray,
               rng: np.random.Generator, batch: int = 200, burn_in: int = 100, steps: int = 200,
               mode: str = "episodic") -> MeanField:
    """Population statistics under (pi_g, pi_l), with the real coupling between s_g and the robots.

    `episodic` (default) weights the steps of episodes from the task's initial
    distribution by gamma^t over the horizon: the occupancy that the discounted
    return from that distribution, and so the certificate, is about.
    `stationary` runs `batch` populations for burn_in + steps and tallies the last
    `steps` equally: the long-run mean field.
    """
    if mode not in MEAN_FIELD_MODES:
        raise GameValidationError(f"mean-field mode must be one of {MEAN_FIELD_MODES}, got {mode!r}")
    horizon, used = (game.horizon, game.horizon) if mode == "episodic" else (burn_in + steps, steps)
    L, A = game.num_local_states, game.num_local_actions
    budget.check(budget.mean_field_bytes(batch, horizon, used, L, A),
                 f"the mean field ({batch} populations x {horizon} steps x {L} local states recorded)",
                 "reduce mean_field_batch, mean_field_steps or zones")
    if mode == "episodic":
        run = rollout(game, global_policy, local_policy, rng, batch, record_profiles=True)
        first, weights = 0, game.gamma ** np.arange(game.horizon)
    else:
        run = rollout(game, global_policy, local_policy, rng, batch, horizon=burn_in + steps, record_profiles=True)
        first, weights = burn_in, np.ones(steps)
    G, B = game.num_global_states, game.num_global_actions
    states = run.global_states[:, first:-1].ravel()
    actions = run.global_actions[:, first:].ravel()
    profiles = run.profiles[:, first:].reshape(-1, L)
    w = np.broadcast_to(weights, run.global_actions[:, first:].shape).ravel()
    joint = np.bincount(states * B + actions, weights=w, minlength=G * B).reshape(G, B)
    visits = joint.sum(axis=1)
    # a global state never visited: its actions are unknown, so take them as uniform
    action_given_state = np.where(visits[:, None] > 0, joint / np.maximum(visits[:, None], 1e-300), 1.0 / B)
    profile_sum = np.zeros((G, L))
    np.add.at(profile_sum, states, profiles * w[:, None])
    overall = (profiles * w[:, None]).sum(axis=0) / w.sum()
    profile_given_state = np.where(visits[:, None] > 0, profile_sum / np.maximum(visits[:, None], 1e-300), overall)
    return MeanField(visits / visits.sum(), action_given_state, profile_given_state, overall)


def induced_bellman(game: TabularGame, induced: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Q(s_g, s_l, a_l) = r_l + gamma sum P_ind(g'|g) P_l(s'|s,g,a) V(g', s')."""
    future = np.einsum("gh,lgam,hm->gla", induced, game.local_transition, values)
    return np.transpose(game.local_reward, (1, 0, 2)) + game.gamma * future


def local_value_iteration(game: TabularGame, induced: np.ndarray, tol: float = 1e-8,
                          max_iters: int = 100_000) -> np.ndarray:
    """Optimal Q[s_g, s_l, a_l] of the induced MDP (exact model)."""
    G, L, A = game.num_global_states, game.num_local_states, game.num_local_actions
    budget.check(budget.local_value_iteration_bytes(G, L, A), f"L-LEARN's value iteration over {G}x{L}x{A} entries",
                 "reduce zones")
    values = np.zeros((game.num_global_states, game.num_local_states))
    for _ in range(max_iters):
        q = induced_bellman(game, induced, values)
        new_values = q.max(axis=-1)
        if np.max(np.abs(new_values - values)) < tol * (1 - game.gamma):
            return q
        values = new_values
    raise GameValidationError(f"local value iteration did not converge in {max_iters} iterations")


def local_policy_value(game: TabularGame, induced: np.ndarray, local_policy: np.ndarray) -> np.ndarray:
    """V^{pi_l}(s_g, s_l) in the induced MDP, by solving the linear system exactly."""
    G, L = game.num_global_states, game.num_local_states
    budget.check(budget.local_gap_bytes(G, L, game.num_local_actions),
                 f"the local NE gap's exact linear system over {G * L} (s_g, s_l) states "
                 f"({G * L}x{G * L} dense)", "reduce zones, or train without the certificate (--no-certify)")
    policy = np.transpose(local_policy, (1, 0, 2))  # (G, L, A)
    reward = (policy * np.transpose(game.local_reward, (1, 0, 2))).sum(axis=-1).ravel()
    local_next = np.einsum("gla,lgam->glm", policy, game.local_transition)  # (G, L, L)
    transition = np.einsum("gh,glm->glhm", induced, local_next).reshape(G * L, G * L)
    return np.linalg.solve(np.eye(G * L) - game.gamma * transition, reward).reshape(G, L)


def local_sampled_q_learning(game: TabularGame, induced: np.ndarray, rng: np.random.Generator, m: int = 64,
                             tol: float = 1e-4, max_iters: int = 100_000) -> np.ndarray:
    """Q-learning on m generative samples of (s_g', s_l') per (s_g, s_l, a_l), iterated to its fixed point."""
    if m < 1:
        raise GameValidationError(f"m (samples per entry) must be >= 1, got {m}")
    G, L, A = game.num_global_states, game.num_local_states, game.num_local_actions
    budget.check(budget.local_sampled_bytes(G, L, A, m), f"sampled L-LEARN ({G}x{L}x{A} entries x m={m} samples)",
                 "reduce local_m or zones")
    next_global = np.stack([inverse_cdf_draw(rng, induced[g], size=(L, A, m)) for g in range(G)])  # (G, L, A, m)
    next_local = np.empty((G, L, A, m), dtype=np.int64)
    for g in range(G):
        for s in range(L):
            for a in range(A):
                next_local[g, s, a] = inverse_cdf_draw(rng, game.local_transition[s, g, a], size=m)
    reward = np.transpose(game.local_reward, (1, 0, 2))
    values = np.zeros((G, L))
    for _ in range(max_iters):
        q = reward + game.gamma * values[next_global, next_local].mean(axis=-1)
        new_values = q.max(axis=-1)
        if np.max(np.abs(new_values - values)) < tol * (1 - game.gamma):
            return q
        values = new_values
    raise GameValidationError(f"local sampled Q-learning did not converge in {max_iters} iterations")


def l_learn(game: TabularGame, field: MeanField, *, method: str = "exact", temperature: float | None = None,
            rng: np.random.Generator | None = None, m: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Best-response local policy (greedy, or softmax at `temperature`) and its Q[s_g, s_l, a_l]."""
    induced = field.induced_global_transition(game)
    if method == "exact":
        q = local_value_iteration(game, induced)
    elif method == "sampled":
        if rng is None:
            raise GameValidationError("sampled L-LEARN needs an rng (np.random.Generator)")
        q = local_sampled_q_learning(game, induced, rng, m=m)
    else:
        raise GameValidationError(f"L-LEARN method must be 'exact' or 'sampled', got {method!r}")
    policy = greedy_local_policy(q) if temperature is None else softmax_local_policy(q, temperature)
    return check_local_policy(game, policy), q


@dataclass
class LocalGap:
    expected: float  # E_{(s_g, s_l) ~ initial}[V* - V^pi]
    worst_state: float  # max over (s_g, s_l) of V* - V^pi


def local_gap(game: TabularGame, field: MeanField, local_policy: np.ndarray) -> LocalGap:
    """What one robot gains by deviating to its best response in the induced MDP (exact)."""
    induced = field.induced_global_transition(game)
    best = local_value_iteration(game, induced).max(axis=-1)
    current = local_policy_value(game, induced, local_policy)
    gain = best - current
    initial = np.outer(game.init_global, game.mean_initial_profile())
    return LocalGap(float((initial * gain).sum()), float(gain.max()))
