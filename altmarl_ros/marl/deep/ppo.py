"""Deep L-LEARN: the representative robot's best response by PPO with a value baseline.

The induced MDP of ALGORITHM.md section 4, simulated rather than tabulated:
`envs` populations evolve under the frozen pair (pi_g, pi_l) — the mean field,
with its real coupling to s_g through the coordinator's k-subsample — while
`agents_per_env` representative robots per population act with the policy
being learned and collect r_l. One robot among n does not move the mean field,
so the representatives are not part of the population.

PPO (clipped surrogate, GAE(lambda), separate actor and critic MLPs) is the
default because the robots' action space is discrete and small, the induced MDP
is stationary within a round, and on-policy batches of thousands of robot-steps
are cheap to simulate; rewards are scaled by (1 - gamma) like the DQN's. The
horizon is a time limit: the last step bootstraps from the critic. The returned
policy is the actor's argmax (`greedy`, the tabular L-LEARN's default) or its
softmax.

    for it in 1..iterations:
        roll out `envs` x `agents_per_env` robots for one horizon with the actor
        advantages by GAE; `epochs` passes of minibatch Adam on
        -min(ratio A, clip(ratio) A) + value_coef (V - R)^2 - entropy_coef H
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from altmarl_ros.marl.deep.nets import ActorPolicy, mlp
from altmarl_ros.marl.defaults import PPO_ITERATIONS
from altmarl_ros.marl.envs import PopulationEnv
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.population import inverse_cdf_draw

log = logging.getLogger(__name__)


@dataclass
class PPOConfig:
    hidden: tuple[int, ...] = (64, 64)
    envs: int = 16  # populations simulated in parallel
    agents_per_env: int = 32  # representative robots per population
    iterations: int = PPO_ITERATIONS
    epochs: int = 4
    minibatch: int = 2048
    learning_rate: float = 1e-3
    clip: float = 0.2
    gae_lambda: float = 0.95
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    grad_clip: float = 0.5
    greedy: bool = True  # the returned policy: argmax of the actor (True) or its softmax
    warm_start: bool = True

    def validate(self) -> None:
        for name in ("envs", "agents_per_env", "iterations", "epochs", "minibatch"):
            if int(getattr(self, name)) < 1:
                raise GameValidationError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not 0 < self.clip < 1 or not 0 <= self.gae_lambda <= 1:
            raise GameValidationError("ppo needs learning_rate > 0, 0 < clip < 1 and 0 <= gae_lambda <= 1, got "
                                      f"{self.learning_rate}, {self.clip}, {self.gae_lambda}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise GameValidationError(f"ppo.hidden must be a non-empty list of layer widths >= 1, got {self.hidden}")


@dataclass
class PPOResult:
    policy: ActorPolicy
    actor: nn.Module
    critic: nn.Module
    seconds: float
    iterations: int
    mean_return: float  # representative robots' discounted return in the last iteration (unscaled)
    samples_per_second: float


def actor_network(env: PopulationEnv, hidden: tuple[int, ...]) -> nn.Module:
    return mlp([env.local_feature_dim, *[int(h) for h in hidden], env.num_local_actions])


def critic_network(env: PopulationEnv, hidden: tuple[int, ...]) -> nn.Module:
    return mlp([env.local_feature_dim, *[int(h) for h in hidden], 1])


def deep_l_learn(env: PopulationEnv, global_policy: Any, population_policy: Any, config: PPOConfig,
                 rng: np.random.Generator, init: tuple[nn.Module, nn.Module] | None = None,
                 progress: bool = False) -> PPOResult:
    """Best response of one robot to the frozen coordinator and the population's frozen policy."""
    config.validate()
    torch.manual_seed(int(rng.integers(2**62)))
    actor, critic = actor_network(env, config.hidden), critic_network(env, config.hidden)
    if init is not None and config.warm_start:
        actor.load_state_dict(init[0].state_dict())
        critic.load_state_dict(init[1].state_dict())
    optimiser = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=config.learning_rate)
    sampling = ActorPolicy(actor, env.local_feature_dim, env.num_local_actions, greedy=False)
    population = env.prepare_local(population_policy)
    scale, H, E, M = 1.0 - env.gamma, env.horizon, config.envs, config.agents_per_env
    from tqdm import tqdm

    start, mean_return = time.perf_counter(), float("nan")
    for _ in tqdm(range(config.iterations), desc="deep L-LEARN", disable=not progress, leave=False):
        # --- roll out one horizon of the induced MDP ---------------------------------------------
        features = np.zeros((H + 1, E, M, env.local_feature_dim), dtype=np.float32)
        actions = np.zeros((H, E, M), dtype=np.int64)
        rewards = np.zeros((H, E, M), dtype=np.float32)
        state = env.reset(rng, E)
        agents = env.agents_reset(state, rng, M)
        for t in range(H):
            features[t] = env.agent_features(state.global_state, agents)
            actions[t] = inverse_cdf_draw(rng, sampling.probabilities(features[t]))
            global_action = global_policy.act(env.observe(state, rng, global_policy.k, global_policy.observation))
            agents, rewards[t] = env.agents_step(state, agents, actions[t], rng)
            state, _ = env.step(state, global_action, population, rng)
        features[H] = env.agent_features(state.global_state, agents)
        mean_return = float((rewards * env.gamma ** np.arange(H)[:, None, None]).sum(axis=0).mean())
        # --- advantages by GAE(lambda), bootstrapping at the time limit ----------------------------
        obs = torch.from_numpy(features)
        with torch.no_grad():
            values = critic(obs).squeeze(-1).numpy()
            old_logp = torch.log_softmax(actor(obs[:H]), dim=-1).gather(
                -1, torch.from_numpy(actions)[..., None]).squeeze(-1)
        advantages = np.zeros((H, E, M), dtype=np.float32)
        running = np.zeros((E, M), dtype=np.float32)
        for t in reversed(range(H)):
            delta = scale * rewards[t] + env.gamma * values[t + 1] - values[t]
            running = delta + env.gamma * config.gae_lambda * running
            advantages[t] = running
        returns = advantages + values[:H]
        # --- PPO update ---------------------------------------------------------------------------
        flat_obs = obs[:H].reshape(-1, env.local_feature_dim)
        flat_act = torch.from_numpy(actions.reshape(-1))
        flat_logp = old_logp.reshape(-1)
        flat_adv = torch.from_numpy(advantages.reshape(-1))
        flat_ret = torch.from_numpy(returns.reshape(-1))
        size = len(flat_act)
        for _ in range(config.epochs):
            order = rng.permutation(size)
            for first in range(0, size, config.minibatch):
                idx = torch.from_numpy(order[first:first + config.minibatch])
                adv = flat_adv[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                logits = actor(flat_obs[idx])
                logp_all = torch.log_softmax(logits, dim=-1)
                logp = logp_all.gather(-1, flat_act[idx][:, None]).squeeze(-1)
                ratio = torch.exp(logp - flat_logp[idx])
                surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - config.clip, 1 + config.clip) * adv)
                entropy = -(logp_all.exp() * logp_all).sum(dim=-1)
                value_loss = (critic(flat_obs[idx]).squeeze(-1) - flat_ret[idx]).pow(2)
                loss = (-surrogate + config.value_coef * value_loss - config.entropy_coef * entropy).mean()
                optimiser.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()], config.grad_clip)
                optimiser.step()
    seconds = time.perf_counter() - start
    rate = config.iterations * H * E * M / max(seconds, 1e-9)
    policy = ActorPolicy(actor, env.local_feature_dim, env.num_local_actions, greedy=config.greedy)
    log.debug("deep L-LEARN: %d iterations, last mean return %.3f, %.0f robot-steps/s", config.iterations,
              mean_return, rate)
    return PPOResult(policy, actor, critic, seconds, config.iterations, mean_return, rate)
