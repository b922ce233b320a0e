"""Deep G-LEARN: the coordinator's best response by DQN (double DQN, replay, target network).

Q(s_g, histogram of the k-subsample, a_g) is a small MLP. The robots act with
the frozen local policy; the coordinator only ever sees a fresh k-subsample
(ALGORITHM.md section 3). The learning signal is the system reward
r_g + (1/n) sum_i r_l that the simulator measures: the objective itself, rather
than the paper's k-sample estimate of it (the same in expectation over the
sampled agents' actions, with less noise). Rewards are scaled by (1 - gamma) so
Q stays of the order of one reward whatever the discount. The horizon is a
time limit, not a terminal state: targets bootstrap through it.

    for step in 1..steps:                          # `envs` episodes in lockstep
        a = epsilon-greedy(Q(o));  o', r = env(a)   # fresh k-subsample in o'
        replay <- (o, a, r, o')
        every train_every steps: one Adam step on Huber(Q(o,a), r + gamma Q_target(o', argmax_a' Q(o',a')))
        every target_every updates: Q_target <- Q
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from altmarl_ros.marl.deep.nets import QNetworkPolicy, mlp
from altmarl_ros.marl.defaults import DQN_STEPS
from altmarl_ros.marl.envs import PopulationEnv
from altmarl_ros.marl.errors import GameValidationError

log = logging.getLogger(__name__)


@dataclass
class DQNConfig:
    hidden: tuple[int, ...] = (128, 128)
    envs: int = 32  # episodes stepped in lockstep; each env step adds `envs` transitions
    steps: int = DQN_STEPS  # env steps per best response
    buffer_size: int = 100_000
    batch_size: int = 256
    learning_rate: float = 1e-3
    learning_starts: int = 50  # env steps before the first update
    train_every: int = 1
    target_every: int = 250  # gradient updates between target-network copies
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_fraction: float = 0.5  # of `steps` over which epsilon decays linearly
    grad_clip: float = 10.0
    warm_start: bool = True  # start each round from the previous round's network

    def validate(self) -> None:
        positive = {"envs": self.envs, "steps": self.steps, "buffer_size": self.buffer_size,
                    "batch_size": self.batch_size, "train_every": self.train_every, "target_every": self.target_every}
        for name, value in positive.items():
            if int(value) < 1:
                raise GameValidationError(f"dqn.{name} must be >= 1, got {value}")
        if not self.learning_rate > 0:
            raise GameValidationError(f"dqn.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.epsilon_end <= self.epsilon_start <= 1:
            raise GameValidationError(
                f"dqn epsilons must satisfy 0 <= epsilon_end <= epsilon_start <= 1, got {self.epsilon_start}, "
                f"{self.epsilon_end}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise GameValidationError(f"dqn.hidden must be a non-empty list of layer widths >= 1, got {self.hidden}")


@dataclass
class DQNResult:
    policy: QNetworkPolicy
    seconds: float
    updates: int
    last_loss: float
    transitions_per_second: float


class ReplayBuffer:
    """A ring of transitions in numpy arrays; sampled with the learner's numpy generator."""

    def __init__(self, size: int, obs_dim: int) -> None:
        self.obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.action = np.zeros(size, dtype=np.int64)
        self.reward = np.zeros(size, dtype=np.float32)
        self.size, self.full, self.cursor = size, False, 0

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray) -> None:
        idx = (self.cursor + np.arange(len(obs))) % self.size
        self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx] = obs, action, reward, next_obs
        self.full = self.full or self.cursor + len(obs) >= self.size
        self.cursor = int((self.cursor + len(obs)) % self.size)

    def __len__(self) -> int:
        return self.size if self.full else self.cursor

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(len(self), size=batch)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.action[idx]),
                torch.from_numpy(self.reward[idx]), torch.from_numpy(self.next_obs[idx]))


def q_network(env: PopulationEnv, hidden: tuple[int, ...]) -> nn.Module:
    return mlp([env.global_obs_dim, *[int(h) for h in hidden], env.num_global_actions])


def deep_g_learn(env: PopulationEnv, local_policy: Any, k: int, config: DQNConfig, rng: np.random.Generator,
                 observation: str = "subsample", init: nn.Module | None = None,
                 progress: bool = False) -> DQNResult:
    """Best response of the coordinator (seeing k robots, or all with observation='full') to a frozen local policy."""
    config.validate()
    env.check_k(k)
    torch.manual_seed(int(rng.integers(2**62)))
    net = q_network(env, config.hidden)
    if init is not None and config.warm_start:
        net.load_state_dict(init.state_dict())
    target = copy.deepcopy(net)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    buffer = ReplayBuffer(config.buffer_size, env.global_obs_dim)
    local = env.prepare_local(local_policy)
    scale = 1.0 - env.gamma
    policy = QNetworkPolicy(net, env.global_obs_dim, env.num_global_actions, k, observation)

    start = time.perf_counter()
    state = env.reset(rng, config.envs)
    obs = env.observe(state, rng, k, observation)
    t, updates, last_loss = 0, 0, float("nan")
    decay_steps = max(1, int(config.epsilon_fraction * config.steps))
    from tqdm import tqdm

    for step in tqdm(range(config.steps), desc=f"deep G-LEARN k={k}", disable=not progress, leave=False):
        # --- act: epsilon-greedy on the fresh subsample -----------------------------------------
        epsilon = config.epsilon_start + min(1.0, step / decay_steps) * (config.epsilon_end - config.epsilon_start)
        explore = rng.random(config.envs) < epsilon
        action = np.where(explore, rng.integers(env.num_global_actions, size=config.envs), policy.act(obs))
        state, reward = env.step(state, action, local, rng)
        t += 1
        if t == env.horizon:  # time limit: bootstrap through it, then start new episodes
            next_obs = env.observe(state, rng, k, observation)
            buffer.add(obs, action, scale * reward, next_obs)
            state, t = env.reset(rng, config.envs), 0
            obs = env.observe(state, rng, k, observation)
        else:
            next_obs = env.observe(state, rng, k, observation)
            buffer.add(obs, action, scale * reward, next_obs)
            obs = next_obs
        # --- learn -------------------------------------------------------------------------------
        if step < config.learning_starts or step % config.train_every:
            continue
        b_obs, b_action, b_reward, b_next = buffer.sample(rng, config.batch_size)
        with torch.no_grad():
            best_next = net(b_next).argmax(dim=1, keepdim=True)
            target_q = b_reward + env.gamma * target(b_next).gather(1, best_next).squeeze(1)
        q = net(b_obs).gather(1, b_action[:, None]).squeeze(1)
        loss = nn.functional.smooth_l1_loss(q, target_q)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimiser.step()
        updates += 1
        last_loss = loss.item()
        if updates % config.target_every == 0:
            target.load_state_dict(net.state_dict())
    seconds = time.perf_counter() - start
    rate = config.steps * config.envs / max(seconds, 1e-9)
    log.debug("deep G-LEARN k=%d (%s): %d updates, last TD loss %.4g, %.0f transitions/s", k, observation, updates,
              last_loss, rate)
    return DQNResult(policy, seconds, updates, last_loss, rate)
