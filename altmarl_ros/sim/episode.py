"""Trained ALTERNATING-MARL policies driving the swarm world for one episode.

Each decision period: read every body's zone; the coordinator draws a fresh
uniform k-subset of robots and acts on its count vector; each robot acts with
pi_l; destinations follow the task model (`transition_noise="model"`) or the
commanded move ("none"); the go-to controller drives for the decision period at
the control rate; the zones reached are the next states. Rewards are the zones
task's, computed from the zones the bodies are actually in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.policies import GlobalPolicy
from altmarl_ros.marl.population import inverse_cdf_draw
from altmarl_ros.sim.backend import WorldError
from altmarl_ros.sim.config import WorldConfig
from altmarl_ros.sim.controller import GoToController
from altmarl_ros.sim.moves import ZONE_MOVES, leader_destination, local_actions, robot_destinations
from altmarl_ros.sim.world import SwarmWorld


@dataclass
class Frame:
    """A snapshot for pictures: poses of every body, the k sampled robot ids, the leader's target zone."""

    time: float
    step: int
    poses: np.ndarray
    sampled: np.ndarray
    leader_target: int


@dataclass
class SimEpisode:
    discounted_return: float
    mode_accuracy: float
    transitions: np.ndarray  # (L, G, A, L) counts of (s_l, s_g, a_l) -> s_l'
    sim_seconds: float
    wall_seconds: float
    frames: list[Frame] = field(default_factory=list)


def check_world_matches(game: TabularGame, config: WorldConfig) -> None:
    if game.num_local_states != config.zones:
        raise WorldError(f"the policy is for {game.num_local_states} zones but the world has {config.zones}")
    if game.num_local_actions != len(ZONE_MOVES):
        raise WorldError(f"the swarm world drives zone moves {list(ZONE_MOVES)}; the game has "
                         f"{game.num_local_actions} local actions")


def run_episode(config: WorldConfig, game: TabularGame, global_policy: GlobalPolicy, local_policy: np.ndarray,
                n: int, rng: np.random.Generator, record_every: int = 0, horizon: int | None = None) -> SimEpisode:
    """One episode of the task's horizon; `record_every` > 0 keeps a Frame every that many control steps."""
    check_world_matches(game, config)
    check_population(n, global_policy.k)
    horizon = game.horizon if horizon is None else horizon
    if horizon < 1:
        raise GameValidationError(f"horizon must be >= 1, got {horizon}")
    Z = config.zones
    leader_zone = int(inverse_cdf_draw(rng, game.init_global, size=1)[0])
    profile = rng.dirichlet(game.init_local_alpha)
    world = SwarmWorld(config, inverse_cdf_draw(rng, profile, size=n), leader_zone, rng)
    controller = GoToController(world.radii, config.max_linear, config.max_angular)
    transitions = np.zeros((Z, Z, len(ZONE_MOVES), Z), dtype=np.int64)
    frames: list[Frame] = []
    total, discount, hits = 0.0, 1.0, 0
    start = time.perf_counter()
    try:
        zones = world.zones()
        for t in range(horizon):
            g, s = int(zones[0]), zones[1:]
            sampled = rng.choice(n, size=global_policy.k, replace=False)
            observed = np.bincount(s[sampled], minlength=Z)
            a_g = int(global_policy.act(np.array([g]), observed[None, :])[0])
            a_l = local_actions(rng, local_policy, s, g)
            total += discount * (game.global_reward[g, a_g] + game.local_reward[s, g, a_l].mean())
            hits += int(a_g == np.argmax(np.bincount(s, minlength=Z)))
            robot_dest = robot_destinations(rng, game, config.transition_noise, s, g, a_l)
            leader_dest = leader_destination(rng, game, config.transition_noise, g, a_g)
            poses = world.poses()
            targets = np.vstack([world.leader_target(leader_dest), world.park(robot_dest)])
            for c in range(config.control_steps_per_decision):
                poses = world.poses()
                linear, angular = controller(poses, targets, config.control_dt)
                world.set_cmd_vel(linear, angular)
                world.step()
                if record_every and c % record_every == 0:
                    frames.append(Frame(world.time, t, poses, sampled, leader_dest))
            zones = world.zones()
            np.add.at(transitions, (s, g, a_l, zones[1:]), 1)
            discount *= game.gamma
    finally:
        world.close()
    return SimEpisode(total, hits / horizon, transitions, world.time, time.perf_counter() - start, frames)


def transition_table(game: TabularGame, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Empirical P(s_l' | s_l, s_g, a_l) next to the model's, as displacement tables per local action.

    Returns (empirical, model, tv): displacement distributions of shape (A, Z)
    (displacement d = s' - s mod Z, weighted by how often each (s, g, a) was
    visited), and the visit-weighted mean total-variation distance between the
    empirical and model rows.
    """
    Z = game.num_local_states
    visits = transitions.sum(axis=-1)  # (L, G, A)
    empirical_rows = transitions / np.maximum(visits[..., None], 1)
    model_rows = game.local_transition
    tv_rows = 0.5 * np.abs(empirical_rows - model_rows).sum(axis=-1)
    tv = float((tv_rows * visits).sum() / max(visits.sum(), 1))
    shift = (np.arange(Z)[None, :] + np.arange(Z)[:, None]) % Z  # [s, d] -> s'
    s_idx = np.arange(Z)[:, None, None, None]
    g_idx = np.arange(Z)[None, :, None, None]
    a_idx = np.arange(game.num_local_actions)[None, None, :, None]
    emp_disp = transitions[s_idx, g_idx, a_idx, shift[:, None, None, :]].sum(axis=(0, 1))  # (A, Z)
    model_disp = (model_rows[s_idx, g_idx, a_idx, shift[:, None, None, :]] * visits[..., None]).sum(axis=(0, 1))
    norm = np.maximum(visits.sum(axis=(0, 1))[:, None], 1)
    return emp_disp / norm, model_disp / norm, tv
