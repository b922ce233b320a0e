"""The node logic without ROS: the coordinator's sampling, liveness, partial replies and learning."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from altmarl_ros.agents.coordinator import Coordinator
from altmarl_ros.agents.robot_agent import RobotAgent
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.glearn import OnlineGLearner
from altmarl_ros.marl.policies import GlobalPolicy, uniform_local_policy
from altmarl_ros.sim.config import WorldConfig, zone_centres
from altmarl_ros.tasks import make_game


def _coordinator(n=20, k=4, learner=False, seed=0):
    game = make_game("zones", {"n": n})
    policy = GlobalPolicy.constant(game, k, action=2)
    rng = np.random.default_rng(seed)
    online = OnlineGLearner(game, k, np.random.default_rng(seed + 1), epsilon=0.0) if learner else None
    return game, Coordinator(game, k, policy, uniform_local_policy(game), rng, learner=online)


def test_each_step_asks_exactly_k_distinct_robots_uniformly():
    game, coordinator = _coordinator()
    asked = []
    for _ in range(2000):
        step, ids = coordinator.begin_step(0)
        assert len(ids) == 4 and len(set(ids.tolist())) == 4
        for robot in ids:
            coordinator.on_reply(step, int(robot), 1)
        decision = coordinator.finish_step()
        assert decision.k_effective == 4 and decision.counts.sum() == 4
        asked.extend(ids.tolist())
    # each of 20 robots is asked 2000*4/20 = 400 times in expectation; chi-square at level 0.001
    # (false alarm once in 1000 seeds; the statistic is slightly conservative for draws without replacement)
    assert chisquare(np.bincount(asked, minlength=20)).pvalue > 0.001


def test_replies_for_other_steps_or_robots_are_rejected():
    game, coordinator = _coordinator()
    step, ids = coordinator.begin_step(0)
    others = np.setdiff1d(np.arange(20), ids)
    assert not coordinator.on_reply(step - 1, int(ids[0]), 0)  # stale
    assert not coordinator.on_reply(step, int(others[0]), 0)  # not asked
    assert coordinator.on_reply(step, int(ids[0]), 0)
    assert not coordinator.on_reply(step, int(ids[0]), 0)  # repeated
    assert not coordinator.on_reply(step, int(ids[1]), 9)  # no such zone
    assert coordinator.stats.rejected == 4 and coordinator.stats.replies == 1


def test_a_reply_after_its_step_closed_is_late_once_and_never_accepted():
    game, coordinator = _coordinator()
    step, ids = coordinator.begin_step(0)
    for robot in ids[1:]:
        coordinator.on_reply(step, int(robot), 0)
    coordinator.finish_step()  # ids[0] timed out
    coordinator.begin_step(0)
    assert not coordinator.on_reply(step, int(ids[1]), 0)  # answered in time already: a repeat
    assert not coordinator.on_reply(step, int(ids[0]), 0)  # the timed-out request, answered late
    assert not coordinator.on_reply(step, int(ids[0]), 0)  # and again: a repeat
    stats = coordinator.stats
    assert (stats.late, stats.rejected, stats.timeouts, stats.replies) == (1, 2, 1, 3)


def test_dropped_replies_lower_k_effective_and_dead_robots_stop_being_asked():
    game, coordinator = _coordinator()
    silent = 7
    for _ in range(200):
        step, ids = coordinator.begin_step(0)
        for robot in ids:
            if robot != silent:
                coordinator.on_reply(step, int(robot), 3)
        decision = coordinator.finish_step()
        if silent in ids:
            assert decision.k_effective == 3
            assert decision.counts.sum() == 4  # rescaled to the k the policy was trained for
    assert silent in coordinator.dead()
    # once dead it is never asked again; a heartbeat does not clear its missed requests, an answer does
    for _ in range(50):
        step, ids = coordinator.begin_step(0)
        assert silent not in ids
        for robot in ids:
            coordinator.on_reply(step, int(robot), 3)
        coordinator.finish_step()
    coordinator.heard_from(silent)
    assert silent in coordinator.dead()
    coordinator.on_reply(step, silent, 3)  # a late reply: rejected, but it shows the robot answers
    assert silent in coordinator.alive() and coordinator.stats.rejected >= 1


def test_a_robot_that_only_sends_heartbeats_is_dead_after_max_missed_and_back_after_a_silence():
    game = make_game("zones", {"n": 20})
    coordinator = Coordinator(game, 4, GlobalPolicy.constant(game, 4), uniform_local_policy(game),
                              np.random.default_rng(3), max_missed=2, liveness_timeout=5.0)
    now, mute = 0.0, 7
    while coordinator.missed[mute] < 2:  # robot 7 heartbeats every step but never answers
        now += 1.0
        step, ids = coordinator.begin_step(0, now=now)
        for robot in range(20):
            coordinator.heard_from(robot, now=now)
        for robot in ids:
            if robot != mute:
                coordinator.on_reply(step, int(robot), 1, now=now)
        coordinator.finish_step()
    assert coordinator.dead().tolist() == [mute]
    coordinator.heard_from(mute, now=now + 1.0)  # heartbeats do not revive it
    assert mute in coordinator.dead()
    coordinator.heard_from(mute, now=now + 7.0)  # back after more than liveness_timeout of silence
    assert mute in coordinator.alive()


def test_replies_of_another_session_are_rejected():
    game = make_game("zones", {"n": 20})
    coordinator = Coordinator(game, 4, GlobalPolicy.constant(game, 4), uniform_local_policy(game),
                              np.random.default_rng(0), session=77)
    step, ids = coordinator.begin_step(0)
    assert not coordinator.on_reply(step, int(ids[0]), 1, session=76)
    assert coordinator.on_reply(step, int(ids[0]), 1, session=77)


def test_no_replies_keeps_the_last_action_and_steps_on():
    game, coordinator = _coordinator()
    step, ids = coordinator.begin_step(1)
    decision = coordinator.finish_step()
    assert decision.k_effective == 0 and decision.global_action == 0  # nothing chosen yet: action 0
    step, ids = coordinator.begin_step(1)
    for robot in ids:
        coordinator.on_reply(step, int(robot), 2)
    assert coordinator.finish_step().global_action == 2


def test_online_learning_updates_the_visited_entry():
    game, coordinator = _coordinator(learner=True)
    for _ in range(3):
        step, ids = coordinator.begin_step(0)
        for robot in ids:
            coordinator.on_reply(step, int(robot), 0)
        decision = coordinator.finish_step()
    assert decision.td_error is not None
    entry = coordinator.learner.index.rank(np.array([4, 0, 0, 0, 0]))
    assert coordinator.q_values[0, entry].max() > 0  # rewards at zone 0 with the leader there are positive


def test_policy_for_another_k_is_refused():
    game = make_game("zones", {"n": 20})
    with pytest.raises(GameValidationError, match="trained for k=3"):
        Coordinator(game, 4, GlobalPolicy.constant(game, 3), uniform_local_policy(game), np.random.default_rng(0))


def test_robot_agent_picks_a_zone_and_drives_to_its_slot():
    game = make_game("zones", {"n": 10})
    world = WorldConfig(transition_noise="none")
    stay = np.zeros((5, 5, 3))
    stay[..., 1] = 1.0  # always 'up'
    agent = RobotAgent(3, 10, game, stay, world, np.random.default_rng(0))
    assert agent.cmd_vel(0.1) == (0.0, 0.0)  # no pose yet: stand still
    centre = zone_centres(world)[2]
    agent.on_pose(centre[0], centre[1], 0.0)
    assert agent.zone == 2
    assert agent.on_global(1, 0) == 1
    assert np.allclose(agent.target, zone_centres(world)[3] + agent.slot)
    linear, angular = agent.cmd_vel(0.1)
    assert abs(linear) <= world.max_linear and abs(angular) <= world.max_angular
    assert agent.sample_reply(1, np.array([3, 5])) == (1, 3, 2)
    assert agent.sample_reply(1, np.array([4])) is None
    with pytest.raises(GameValidationError, match="NaN"):
        agent.on_pose(float("nan"), 0.0, 0.0)


def test_a_silent_robot_is_presumed_dead_after_the_liveness_timeout():
    game = make_game("zones", {"n": 20})
    coordinator = Coordinator(game, 4, GlobalPolicy.constant(game, 4), uniform_local_policy(game),
                              np.random.default_rng(0), liveness_timeout=5.0)
    coordinator.begin_step(0, now=0.0)
    coordinator.finish_step()
    for robot in range(19):  # everyone but robot 19 sends heartbeats
        coordinator.heard_from(robot, now=4.0)
    coordinator.begin_step(0, now=5.5)
    coordinator.finish_step()
    assert coordinator.dead().tolist() == [19]
    for _ in range(100):
        step, ids = coordinator.begin_step(0, now=5.5)
        assert 19 not in ids
        coordinator.finish_step()
    coordinator.heard_from(19, now=6.0)
    assert 19 in coordinator.alive()


def test_tf_allow_list():
    from altmarl_ros.marl.errors import AltmarlError
    from altmarl_ros.nodes.topics import body_frame, parse_tf_bodies

    assert parse_tf_bodies("leader", 5) == [0]
    assert parse_tf_bodies("leader, 0, 3-4", 5) == [0, 1, 4, 5]  # body i + 1 is robot i
    assert parse_tf_bodies("all", 2) == [0, 1, 2]
    assert parse_tf_bodies("", 3) == []
    assert [body_frame(b) for b in (0, 1)] == ["leader/base_link", "robot_0/base_link"]
    for bad, message in (("7", "outside 0..4"), ("robot", "not 'leader'"), ("3-1", "outside")):
        with pytest.raises(AltmarlError, match=message):
            parse_tf_bodies(bad, 5)


def test_robots_follow_a_restarted_coordinator_and_no_forged_step_stops_them():
    from altmarl_ros.nodes.topics import SessionFollower

    follower = SessionFollower(window=16)
    assert [follower.accept(5, step) for step in (1, 2, 2, 3)] == [True, True, False, True]  # a duplicate
    assert follower.accept(9, 1)  # a restarted coordinator (new session) is followed from its first step
    assert not follower.accept(9, 1) and follower.accept(9, 2)
    assert follower.accept(9, 2**31 - 1)  # a forged step far ahead ...
    assert follower.accept(9, 3)  # ... costs that one message: the real sequence is followed again
    assert not follower.accept(9, 3) and follower.accept(9, 4)
    assert (follower.switches, follower.resets, follower.dropped) == (2, 1, 3)


@pytest.mark.parametrize("data, message", [
    ([1, 2, 3], "length 3"), ([0, 1, 2, 3], "session 0 outside"), ([1, 1.5, 0, 0], "step is not an integer"),
    ([1, 1, 5, 0], "global state 5 outside"), ([1, 1, 0, -1], "global action -1 outside"),
])
def test_a_malformed_broadcast_is_refused_without_echoing_it(data, message):
    from altmarl_ros.nodes.topics import MessageError, parse_global

    with pytest.raises(MessageError, match=message) as info:
        parse_global(data, 5, 5)
    assert str(data) not in str(info.value)


def test_sample_and_request_parsing():
    from altmarl_ros.nodes.topics import MessageError, parse_request, parse_sample, sample_data

    assert parse_sample(sample_data(7, 3, 2, 4, 0.5, -1.0), 10, 5) == (7, 3, 2, 4, 0.5, -1.0)
    for bad, message in (([7, 3, 2, 2.5, 0, 0], "zone is not an integer"), ([7, 3, 12, 1, 0, 0], "robot id 12"),
                         ([7, 3, 2, 1, float("nan"), 0], "not finite"), ([7, 3, 2, 1, 0], "length 5")):
        with pytest.raises(MessageError, match=message):
            parse_sample(bad, 10, 5)
    assert parse_request([7, 3, 0, 9], 10) == (7, 3, [0, 9])
    with pytest.raises(MessageError, match="at most 10 ids"):
        parse_request([7, 3, *range(11)], 10)  # longer than n: refused on its length alone
    with pytest.raises(MessageError, match="outside"):
        parse_request([7, 3, 10], 10)


def _batch_and_agents(first=5, last=13, n=20, seed=3):
    from altmarl_ros.agents.robot_batch import RobotBatch

    game = make_game("zones", {"n": n})
    world = WorldConfig(zones=game.num_local_states)
    policy = uniform_local_policy(game)
    batch = RobotBatch(first, last, n, game, policy, world, seed)
    agents = [RobotAgent(i, n, game, policy, world, np.random.default_rng([seed, i])) for i in range(first, last)]
    poses = np.random.default_rng(0).uniform(-3, 3, (last - first, 3))
    return batch, agents, poses


def test_a_batch_of_robots_acts_and_drives_as_the_same_robots_one_by_one():
    """The batched link's fleet evaluates the robots' own agents, controllers as arrays: same draws, same
    commands as the per-robot link's robot nodes (same seed per robot)."""
    batch, agents, poses = _batch_and_agents()
    batch.on_poses(poses)
    for agent, pose in zip(agents, poses, strict=True):
        agent.on_pose(*pose)
    for step, global_state in enumerate([0, 3, 3, 1, 4], start=1):
        decisions = batch.on_global(step, global_state)
        one_by_one = [(a.robot_id, a.zone, a.on_global(step, global_state), a.destination) for a in agents]
        assert decisions == [(i, z, act, d) for i, z, act, d in one_by_one]
        expected = np.array([a.cmd_vel(0.1) for a in agents])
        np.testing.assert_allclose(batch.cmd_vel(0.1), expected, rtol=0, atol=1e-12)


def test_a_batch_answers_exactly_the_robots_asked_that_it_hosts_each_once():
    batch, _, poses = _batch_and_agents(first=5, last=13)
    assert batch.sample_replies(1, np.array([5, 6])) == []  # no pose yet: nothing to say
    batch.on_poses(poses)
    replies = batch.sample_replies(7, np.array([12, 2, 5, 12, 19, 8]))
    assert [robot for _, robot, _, _, _ in replies] == [12, 5, 8]  # hosted ones, in the order asked, once
    assert all(step == 7 and 0 <= zone < 5 for step, _, zone, _, _ in replies)
    assert replies[0][3:] == (poses[7, 0], poses[7, 1])


def test_a_batch_refuses_poses_of_the_wrong_shape_or_not_finite():
    batch, _, poses = _batch_and_agents()
    with pytest.raises(GameValidationError, match="shape"):
        batch.on_poses(poses[:-1])
    bad = poses.copy()
    bad[2, 1] = np.nan
    with pytest.raises(GameValidationError, match="NaN"):
        batch.on_poses(bad)
    assert not batch.has_pose and not np.any(batch.cmd_vel(0.1))  # nothing taken, robots stand still


def test_the_control_gate_opens_once_per_period_and_afresh_when_the_clock_goes_back():
    from altmarl_ros.sim.controller import ControlGate

    gate = ControlGate(0.1)
    opened = [t for t in np.arange(0.0, 1.0, 0.025) if gate.due(float(t))]
    np.testing.assert_allclose(opened, np.arange(0.0, 1.0, 0.1), atol=1e-9)  # every 4th pose of 40 Hz
    assert not gate.due(0.95) and gate.due(0.2)  # a restarted sim's clock: at once, not after 0.8 s


def test_a_learning_coordinator_starts_from_the_policy_or_resumes_a_saved_online_run(tmp_path):
    from altmarl_ros import runs
    from altmarl_ros.agents.coordinator import online_learner
    from altmarl_ros.marl.alternation import AlternationConfig, alternate
    from altmarl_ros.marl.checkpoint import load_checkpoint

    game = make_game("zones", {"n": 20})
    entries = OnlineGLearner(game, 4, np.random.default_rng(0)).visits.shape[1]
    policy_q = np.random.default_rng(0).random((5, entries, 5))
    fresh = online_learner(game, 4, 0, policy_q, None, 0.1, 0.0)
    np.testing.assert_array_equal(fresh.q_values, policy_q)
    assert fresh.visits.sum() == 0 and fresh.learning_rate is None and fresh.epsilon == 0.1
    fresh.visits[1, 3, 2] = 7
    learned_q = policy_q + 1.0
    policy = runs.load(runs.save(alternate(make_game("zones", {"n": 20}), 4, AlternationConfig(
        rounds=1, certify=False, eval_seeds=1, eval_rollouts=2, starts=("uniform",)), seed=0), tmp_path / "run",
        "zones", {"n": 20}))
    path = runs.save_online(tmp_path / "online.npz", policy, fresh, learned_q, steps=12)
    saved = load_checkpoint(path)
    assert saved.meta["task"] == "zones" and saved.meta["online"] == {"steps": 12, "updates": 7}
    np.testing.assert_array_equal(saved.array("local_policy"), policy.local_policy)  # the rest of the run is kept
    np.testing.assert_array_equal(saved.array("global_actions"), np.argmax(learned_q, axis=-1))
    resumed = online_learner(game, 4, 0, policy_q, saved, 0.1, 0.5)
    np.testing.assert_allclose(resumed.q_values, learned_q.astype(np.float32))
    assert resumed.visits[1, 3, 2] == 7 and resumed.visits.sum() == 7 and resumed.learning_rate == 0.5


def test_the_sim_places_the_robots_by_one_draw_of_the_initial_distribution():
    from altmarl_ros.sim.world import initial_zones

    game = make_game("zones", {"n": 200})
    leader, zones = initial_zones(game, np.random.default_rng(3))
    again = initial_zones(game, np.random.default_rng(3))
    assert leader == again[0] and np.array_equal(zones, again[1])  # same seed, same placement
    assert zones.shape == (200,) and 0 <= leader < 5 and set(np.unique(zones)) <= set(range(5))
    other = initial_zones(game, np.random.default_rng(4))[1]
    assert not np.array_equal(zones, other)
