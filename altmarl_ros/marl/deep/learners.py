"""ALTERNATING-MARL with function approximation: DQN and PPO behind the same `Learners` loop.

`deep_alternate` runs `marl.alternation.run_alternation` — the loop the tabular
learners use — with `DeepLearners`:

* global best response: `deep_g_learn` (DQN on the k-subsample), warm-started
  from the previous round's network;
* local best response: `deep_l_learn` (PPO in the induced MDP), warm-started;
* value: the evaluation protocol on the task's `PopulationEnv`;
* certificate (NE-gap estimate, with 95 % intervals from paired per-seed
  differences on common random numbers):
  global — the same DQN trained with full observation of the population's
  histogram, against the k-subsampled policy; local — a fresh PPO best response
  (from scratch) against the frozen pair, its representative robot's return
  against the current local policy's.

By default the certificate is computed once, for the best pair (`certify:
final`); `every_round` certifies each round, `none` skips it.

Seeding: one seed. Python's `random`, numpy's global generator and torch's are
seeded with it; `SeedSequence(seed)` is split into named numpy streams that
every draw of the learners comes from, and torch's initial weights are seeded
from those streams. torch runs on `threads` threads (1 by default: the networks
are small, and one thread gives bit-identical results on CPU).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from altmarl_ros.marl.alternation import (
    AlternationOutcome,
    Certificate,
    GlobalResponse,
    LocalResponse,
    RoundRecord,
    run_alternation,
)
from altmarl_ros.marl.baselines import UniformLocalPolicy
from altmarl_ros.marl.certificate import paired_difference
from altmarl_ros.marl.config import config_from_mapping
from altmarl_ros.marl.deep.dqn import DQNConfig, deep_g_learn
from altmarl_ros.marl.deep.nets import seed_everything
from altmarl_ros.marl.deep.ppo import PPOConfig, deep_l_learn
from altmarl_ros.marl.envs import PopulationEnv
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.evaluation import EvaluationReport
from altmarl_ros.marl.rollouts import evaluate_env, representative_values

log = logging.getLogger(__name__)

STREAMS = ("glearn", "llearn", "reference", "local_gap")
CERTIFY_MODES = ("final", "every_round", "none")


@dataclass
class DeepConfig:
    rounds: int = 2
    dqn: DQNConfig = field(default_factory=DQNConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval_seeds: int = 5  # per-round value: seeds 0..eval_seeds-1
    eval_rollouts: int = 50
    certify: str = "final"
    gap_tol: float = 0.0
    gap_seeds: int = 5  # evaluation seeds of the certificate
    gap_rollouts: int = 50  # episodes per seed for the global gap
    gap_agents: int = 64  # representative robots per episode for the local gap
    gap_agent_rollouts: int = 10  # episodes per seed for the local gap
    threads: int = 1

    def validate(self, env: PopulationEnv, k: int) -> None:
        env.check_k(k)
        if self.rounds < 1:
            raise GameValidationError(f"rounds must be >= 1, got {self.rounds}")
        if self.certify not in CERTIFY_MODES:
            raise GameValidationError(f"certify must be one of {CERTIFY_MODES}, got {self.certify!r}")
        for name in ("eval_seeds", "eval_rollouts", "gap_seeds", "gap_rollouts", "gap_agents", "gap_agent_rollouts",
                     "threads"):
            if int(getattr(self, name)) < 1:
                raise GameValidationError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.dqn.validate()
        self.ppo.validate()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> DeepConfig:
        """Build from a mapping with optional nested `dqn:` and `ppo:` mappings; unknown keys are errors."""
        values = dict(values or {})
        for name in ("dqn", "ppo"):
            if values.get(name) is not None and not isinstance(values[name], dict):
                raise GameValidationError(f"deep.{name} must be a mapping of keys to values, got {values[name]!r}")
        dqn = config_from_mapping(DQNConfig, values.pop("dqn", None))
        ppo = config_from_mapping(PPOConfig, values.pop("ppo", None))
        return dataclasses.replace(config_from_mapping(cls, values), dqn=dqn, ppo=ppo)


class DeepLearners:
    """DQN + PPO best responses, protocol value and NE-gap estimate on a PopulationEnv."""

    def __init__(self, env: PopulationEnv, k: int, config: DeepConfig, seed: int, progress: bool = False) -> None:
        self.env, self.k, self.config, self.progress = env, k, config, progress
        seeds = np.random.SeedSequence(seed).spawn(len(STREAMS))
        self.streams = {name: np.random.default_rng(s) for name, s in zip(STREAMS, seeds, strict=True)}
        self.eval_seeds = list(range(config.eval_seeds))
        self.global_net = self.reference_net = None
        self.local_nets: tuple | None = None

    def initial_local_policy(self) -> UniformLocalPolicy:
        return UniformLocalPolicy(self.env.num_local_actions)

    def global_response(self, local_policy: Any) -> GlobalResponse:
        learned = deep_g_learn(self.env, local_policy, self.k, self.config.dqn, self.streams["glearn"],
                               init=self.global_net, progress=self.progress)
        self.global_net = learned.policy.net
        log.info("deep G-LEARN k=%d: %d updates in %.1fs (%.0f transitions/s), last TD loss %.3g", self.k,
                 learned.updates, learned.seconds, learned.transitions_per_second, learned.last_loss)
        return GlobalResponse(learned.policy, learned.seconds, learned.updates, learned.last_loss, learned.policy.net)

    def local_response(self, global_policy: Any, local_policy: Any) -> LocalResponse:
        learned = deep_l_learn(self.env, global_policy, local_policy, self.config.ppo, self.streams["llearn"],
                               init=self.local_nets, progress=self.progress)
        self.local_nets = (learned.actor, learned.critic)
        log.info("deep L-LEARN: %d PPO iterations in %.1fs (%.0f robot-steps/s), representative return %.2f",
                 learned.iterations, learned.seconds, learned.samples_per_second, learned.mean_return)
        return LocalResponse(learned.policy, learned.seconds, self.local_nets)

    def value(self, global_policy: Any, local_policy: Any) -> EvaluationReport:
        return evaluate_env(self.env, global_policy, local_policy, self.eval_seeds, self.config.eval_rollouts)

    def certify(self, global_policy: Any, local_policy: Any) -> Certificate:
        c, env = self.config, self.env
        start = time.perf_counter()
        seeds = [1000 + s for s in range(c.gap_seeds)]  # not the seeds the value was selected on
        reference = deep_g_learn(env, local_policy, self.k, c.dqn, self.streams["reference"], observation="full",
                                 init=self.reference_net, progress=self.progress)
        self.reference_net = reference.policy.net
        mine = evaluate_env(env, global_policy, local_policy, seeds, c.gap_rollouts)
        best = evaluate_env(env, reference.policy, local_policy, seeds, c.gap_rollouts)
        global_gap, global_ci = paired_difference(best.per_seed_returns, mine.per_seed_returns)
        fresh = deep_l_learn(env, global_policy, local_policy, dataclasses.replace(c.ppo, warm_start=False),
                             self.streams["local_gap"], progress=self.progress)
        deviate = representative_values(env, global_policy, local_policy, fresh.policy, seeds, c.gap_agent_rollouts,
                                        c.gap_agents)
        stay = representative_values(env, global_policy, local_policy, local_policy, seeds, c.gap_agent_rollouts,
                                     c.gap_agents)
        local_gap, local_ci = paired_difference(deviate, stay)
        return Certificate(global_gap, global_ci, best.return_mean, local_gap, local_ci, float("nan"),
                           time.perf_counter() - start)


@dataclass
class DeepRunResult:
    env: PopulationEnv
    k: int
    seed: int
    config: DeepConfig
    global_policy: Any  # QNetworkPolicy
    local_policy: Any  # ActorPolicy (greedy or softmax)
    actor: torch.nn.Module
    critic: torch.nn.Module
    best_round: int
    rounds: list[RoundRecord]
    seconds: float

    @property
    def best(self) -> RoundRecord:
        return self.rounds[self.best_round - 1]

    def history(self) -> list[dict]:
        return [dataclasses.asdict(r) for r in self.rounds]


def deep_alternate(env: PopulationEnv, k: int, config: DeepConfig | None = None, seed: int = 0,
                   progress: bool = False) -> DeepRunResult:
    """ALTERNATING-MARL with DQN and PPO; returns the best pair by measured value, certified per `config.certify`."""
    config = config or DeepConfig()
    config.validate(env, k)
    torch.set_num_threads(int(config.threads))
    seed_everything(seed)  # Python's, numpy's global and torch's global RNGs; the learners draw from named streams
    start = time.perf_counter()
    learners = DeepLearners(env, k, config, seed, progress=progress)
    outcome: AlternationOutcome = run_alternation(learners, config.rounds, config.certify == "every_round",
                                                  config.gap_tol, progress, f"deep alternation k={k}")
    g, l_resp = outcome.global_response, outcome.local_response
    if config.certify == "final":
        cert = learners.certify(g.policy, outcome.local_policy)
        record = outcome.rounds[outcome.best_round - 1]
        outcome.rounds[outcome.best_round - 1] = dataclasses.replace(
            record, global_gap=cert.global_gap, global_gap_ci95=cert.global_gap_ci95,
            reference_value=cert.reference_value, local_gap=cert.local_gap, local_gap_ci95=cert.local_gap_ci95,
            reference_seconds=cert.seconds)
        log.info("certificate of the best pair (round %d): global gap %.3f ± %.3f, local gap %.3f ± %.3f",
                 outcome.best_round, cert.global_gap, cert.global_gap_ci95, cert.local_gap, cert.local_gap_ci95)
    actor, critic = l_resp.state
    return DeepRunResult(env, k, seed, config, g.policy, outcome.local_policy, actor, critic, outcome.best_round,
                         outcome.rounds, time.perf_counter() - start)
