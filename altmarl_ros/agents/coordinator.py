"""The coordinator's logic: k-sampling of live robots, the global policy, online G-LEARN.

One decision step, as the coordinator node runs it:

    step, ids = coordinator.begin_step(leader_zone, now)   # publish the request to exactly `ids`
    coordinator.on_reply(step, robot_id, zone, session, now)  # for each reply that arrives in time
    decision = coordinator.finish_step()                   # act, learn, update liveness

Liveness: a robot that misses `max_missed` requests in a row, or that has not
been heard from (reply or heartbeat) for `liveness_timeout` seconds, is presumed
dead and no longer sampled. Any message ends a silence, but only an answer
clears missed requests (a robot that sends heartbeats and never answers stays
dead), except after a silence longer than `liveness_timeout`: a robot back from
a restart or a healed partition starts afresh. With
`assume_alive=False` (what the node uses) a robot is only sampled once it has
been heard from at least once, so requests never go to robots whose
subscriptions DDS has not matched yet.
Dropped replies lower k_effective for that step instead of stalling it; with
fewer than k replies the observed counts are rescaled to k (largest remainder)
so the k-table still applies, and with none the previous action is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from altmarl_ros.marl.checkpoint import Checkpoint
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.glearn import OnlineGLearner
from altmarl_ros.marl.policies import GlobalPolicy, round_counts

RECENT_STEPS = 16  # closed steps whose timed-out ids are kept, to tell a late reply from an unsolicited one


@dataclass
class CommStats:
    steps: int = 0
    requests: int = 0  # robot ids asked, summed over steps
    replies: int = 0  # replies accepted
    rejected: int = 0  # replies of another session, from robots not asked, repeated or invalid
    late: int = 0  # first replies to a request that had timed out (within RECENT_STEPS steps): late <= timeouts
    malformed: int = 0  # messages dropped before they reached the logic (see nodes.topics.parse_*)
    timeouts: int = 0  # asked robots that did not answer in time
    k_effective_last: int = 0
    dead: list[int] = field(default_factory=list)

    replies_now: int = 0  # replies accepted in the current step

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Decision:
    step: int
    global_state: int
    global_action: int
    counts: np.ndarray  # the k-subsample's count vector the policy saw (size k)
    k_effective: int
    reward_estimate: float
    td_error: float | None


class Coordinator:
    """Chooses whom to ask, what to do, and (optionally) learns from it."""

    def __init__(self, game: TabularGame, k: int, global_policy: GlobalPolicy, local_policy: np.ndarray,
                 rng: np.random.Generator, *, learner: OnlineGLearner | None = None, max_missed: int = 3,
                 liveness_timeout: float = float("inf"), assume_alive: bool = True, session: int = 1) -> None:
        check_population(game.n, k)
        if global_policy.k != k:
            raise GameValidationError(f"the global policy was trained for k={global_policy.k}, not k={k}")
        if max_missed < 1:
            raise GameValidationError(f"max_missed must be >= 1, got {max_missed}")
        self.game, self.k, self.policy, self.rng = game, k, global_policy, rng
        self.session = session  # this run's id on the wire (nodes.topics.new_session)
        self.learner = learner
        self.max_missed = max_missed
        if not liveness_timeout > 0:
            raise GameValidationError(f"liveness_timeout must be > 0 seconds, got {liveness_timeout}")
        self.liveness_timeout = liveness_timeout
        self.last_heard = np.full(game.n, np.nan)  # NaN: never heard from
        self.silence_counts = True  # False while the heartbeat channel is flooded (see the coordinator node)
        self.assume_alive = assume_alive
        self.now = 0.0
        self.expected_local_reward = game.expected_local_reward(local_policy)  # (L, G)
        self.missed = np.zeros(game.n, dtype=np.int64)
        self.stats = CommStats()
        self.step = 0
        self._asked: np.ndarray = np.zeros(0, dtype=np.int64)
        self._replies: dict[int, int] = {}
        self._unanswered: dict[int, set[int]] = {}  # step -> asked ids that timed out, last RECENT_STEPS steps
        self._global_state = 0
        self._last_action = 0
        self._previous: tuple[int, np.ndarray, int, float] | None = None  # (s_g, counts, a_g, reward)

    # --- liveness ----------------------------------------------------------------------
    def _dead_mask(self) -> np.ndarray:
        never = np.isnan(self.last_heard)
        silent = self.now - np.where(never, self.now, self.last_heard) > self.liveness_timeout
        if not self.silence_counts:  # heartbeats may be lost in a flood: only missed requests count then
            silent[:] = False
        return (self.missed >= self.max_missed) | silent | (never & (not self.assume_alive))

    def alive(self) -> np.ndarray:
        return np.flatnonzero(~self._dead_mask())

    def dead(self) -> np.ndarray:
        return np.flatnonzero(self._dead_mask())

    def heard_from(self, robot_id: int, now: float | None = None, answered: bool = False) -> None:
        """Any message from a robot ends its silence; an answer (or a return after a silence longer than
        liveness_timeout) also clears its missed requests."""
        if 0 <= robot_id < self.game.n:
            now = self.now if now is None else now
            last = self.last_heard[robot_id]
            if answered or (not np.isnan(last) and now - last > self.liveness_timeout):
                self.missed[robot_id] = 0
            self.last_heard[robot_id] = now

    # --- one decision step ----------------------------------------------------------------
    def begin_step(self, leader_zone: int, now: float | None = None) -> tuple[int, np.ndarray]:
        """Draw a fresh uniform k-subset of the live robots (fewer if fewer are alive)."""
        if now is not None:
            if self.assume_alive and np.all(np.isnan(self.last_heard)):
                self.last_heard[:] = now  # the grace period starts with the first step
            self.now = now
        if not 0 <= leader_zone < self.game.num_global_states:
            raise GameValidationError(f"leader zone {leader_zone} out of range [0, {self.game.num_global_states})")
        self.step += 1
        self._global_state = int(leader_zone)
        alive = self.alive()
        size = min(self.k, len(alive))
        self._asked = np.sort(self.rng.choice(alive, size=size, replace=False)) if size else alive[:0]
        self._replies = {}
        self.stats.replies_now = 0
        self.stats.steps += 1
        self.stats.requests += size
        return self.step, self._asked

    def on_reply(self, step: int, robot_id: int, zone: int, session: int | None = None, now: float | None = None
                 ) -> bool:
        """Record one robot's zone; False if it is late (counted as late), of another session, unsolicited,
        repeated or invalid (counted as rejected). Any reply shows the robot answers."""
        self.heard_from(robot_id, now, answered=True)
        ours = session is None or session == self.session
        valid = (step == self.step and ours and robot_id in self._asked and robot_id not in self._replies
                 and 0 <= zone < self.game.num_local_states)
        if not valid:
            if ours and robot_id in self._unanswered.get(step, ()) and 0 <= zone < self.game.num_local_states:
                self._unanswered[step].discard(robot_id)  # counted once: late <= timeouts
                self.stats.late += 1
            else:
                self.stats.rejected += 1
            return False
        self._replies[int(robot_id)] = int(zone)
        self.stats.replies += 1
        self.stats.replies_now += 1
        return True

    def finish_step(self) -> Decision:
        """Act on the replies received; update liveness, statistics and (if learning) Q."""
        missing = np.setdiff1d(self._asked, np.fromiter(self._replies, dtype=np.int64, count=len(self._replies)))
        self.missed[missing] += 1
        self.stats.timeouts += len(missing)
        self._unanswered[self.step] = set(missing.tolist())
        self._unanswered.pop(self.step - RECENT_STEPS, None)
        self.stats.dead = self.dead().tolist()
        k_effective = len(self._replies)
        self.stats.k_effective_last = k_effective
        g, L = self._global_state, self.game.num_local_states
        observed = np.bincount(np.fromiter(self._replies.values(), dtype=np.int64, count=k_effective), minlength=L)
        if k_effective == 0:
            counts = None
            action = self._last_action
            reward = float(self.game.global_reward[g, action])
        else:
            counts = observed if k_effective == self.k else round_counts(observed[None, :], self.k)[0]
            if self.learner is not None:
                action = self.learner.act(g, counts)
            else:
                action = int(self.policy.act(np.array([g]), counts[None, :])[0])
            reward = float(self.game.global_reward[g, action]
                           + observed @ self.expected_local_reward[:, g] / k_effective)
        td_error = None
        if self.learner is not None and self._previous is not None and counts is not None:
            pg, pcounts, pa, preward = self._previous
            td_error = self.learner.update(pg, pcounts, pa, preward, g, counts)
        self._previous = (g, counts, action, reward) if counts is not None else None
        self._last_action = action
        return Decision(self.step, g, action, counts if counts is not None else np.zeros(L, dtype=np.int64),
                        k_effective, reward, td_error)

    @property
    def q_values(self) -> np.ndarray | None:
        return None if self.learner is None else self.learner.q_values


def online_learner(game: TabularGame, k: int, seed: int, policy_q: np.ndarray, resume: Checkpoint | None,
                   epsilon: float, learning_rate: float) -> OnlineGLearner:
    """Online G-LEARN for a learning coordinator: from the policy's Q table, or, resuming a saved online run,
    from its Q table and visit counts (counts of another shape are not carried over). `learning_rate` 0
    means 1/(1+visits)^0.8."""
    q_values, visits = policy_q, None
    if resume is not None:
        q_values = resume.array("global_q")
        visits = resume.arrays.get("online_visits")
    learner = OnlineGLearner(game, k, np.random.default_rng([seed, 7]), epsilon=epsilon,
                             learning_rate=learning_rate or None, q_values=q_values)
    if visits is not None and visits.shape == learner.visits.shape:
        learner.visits[:] = visits
    return learner
