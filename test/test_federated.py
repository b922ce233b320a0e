"""The `federated` task (altmarl_ros/tasks/federated.py) and its real federated check (federated_check.py)."""

import dataclasses

import numpy as np
import pytest

from altmarl_ros.marl.alternation import AlternationConfig, alternate
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.policies import GlobalPolicy, uniform_local_policy
from altmarl_ros.tasks import make_game
from altmarl_ros.tasks.federated import (
    LOCAL_ACTIONS,
    FederatedConfig,
    build_game,
    client_contribution,
    global_state_index,
)
from altmarl_ros.tasks.federated_calibration import DEFAULT_SEEDS, calibrate
from altmarl_ros.tasks.federated_check import (
    FederatedCheckConfig,
    federated_check,
    federated_check_policies,
    format_report,
)

HEAVY = LOCAL_ACTIONS.index("heavy")
SKIP = LOCAL_ACTIONS.index("skip")
ARRAYS = ("global_transition", "local_transition", "global_reward", "local_reward", "init_global", "init_local_alpha")


def test_default_game_validates_with_the_documented_sizes():
    game = make_game("federated")
    c = FederatedConfig()
    E = len(c.step_sizes)
    assert isinstance(game, TabularGame) and game.name == "federated"
    assert game.num_global_states == c.quality_levels * E == 20
    assert game.num_global_actions == E and game.num_local_states == c.drift_levels == 4
    assert game.num_local_actions == 3 and (game.n, game.gamma, game.horizon) == (1000, 0.95, 50)
    # the step level follows the action: s_g' has e' = a_g whatever q does
    for a in range(E):
        e_next = game.global_transition[:, a].reshape(-1, c.quality_levels, E).sum(axis=1)
        np.testing.assert_allclose(e_next[:, a], 1.0)
    # the episode starts at quality 0
    assert game.init_global[global_state_index(0, np.arange(E), E)].sum() == pytest.approx(1.0)


def _perturbed(value):
    if isinstance(value, tuple):
        return value[:-1] + (_perturbed(value[-1]),)
    if isinstance(value, int):
        return value + 1
    return value * 0.9 if value else 0.05


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(FederatedConfig)])
def test_every_config_number_reaches_the_game(name):
    # the calibration keys act on the calibrated game (few behaviour runs here, to stay fast)
    config = FederatedConfig(calibration="real", calibration_seeds=10) if name.startswith("calibration") \
        else FederatedConfig()
    value = "none" if name == "calibration" else _perturbed(getattr(config, name))
    base = build_game(config)
    changed = build_game(dataclasses.replace(config, **{name: value}))
    differs = [(base.n, base.gamma, base.horizon) != (changed.n, changed.gamma, changed.horizon)]
    for array in ARRAYS:
        a, b = getattr(base, array), getattr(changed, array)
        differs.append(a.shape != b.shape or not np.array_equal(a, b))
    assert any(differs), f"changing {name} changed nothing in the game"


@pytest.mark.parametrize("overrides, message", [
    ({"drift_levels": 0}, "drift_levels must be >= 2"),
    ({"quality_levels": 1}, "quality_levels must be >= 2"),
    ({"step_sizes": []}, "at least one aggregation step size"),
    ({"step_sizes": [0.5, -1.0]}, "step_sizes must be finite and > 0"),
    ({"compute_cost": [0.0, -0.05, 0.25]}, "compute_cost must be finite and >= 0"),
    ({"compute_cost": [0.0, 0.05]}, "one value per client action"),
    ({"reduce_prob": [0.0, 0.5, 1.5]}, "probabilities in [0, 1]"),
    ({"drift_curvature": -0.1}, "drift_curvature must be finite and >= 0"),
    ({"quality_down_step2": 0.5}, "quality move probabilities exceed 1"),
    ({"profile_concentration": 0.0}, "profile_concentration must be > 0"),
    ({"gamma": 1.0}, "gamma must lie in the open interval"),
    ({"no_such_key": 1}, "unknown FederatedConfig keys"),
    ({"calibration": "fake"}, "calibration must be one of"),
    ({"calibration_k": 0}, "calibration_k and calibration_seeds must be >= 1"),
    ({"calibration_reward_scale": 0.0}, "calibration_reward_scale must be finite and > 0"),
])
def test_bad_config_gives_a_clear_error(overrides, message):
    with pytest.raises(GameValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_game("federated", overrides)


def test_best_step_size_depends_on_the_populations_drift():
    """On the arrays: the population's expected local reward per step level, with every client heavy."""
    game = build_game(FederatedConfig())
    E = game.num_global_actions
    best = []
    for d in range(game.num_local_states):
        rewards = [game.local_reward[d, global_state_index(0, e, E), HEAVY] for e in range(E)]
        best.append(int(np.argmax(rewards)))
    assert best[0] == E - 1, "fresh clients: the largest step is best"
    assert best[-1] == 0, "drifted clients: the smallest step is best"
    assert all(a >= b for a, b in zip(best, best[1:], strict=False)), best
    # a population: mostly fresh -> largest step, mostly drifted -> smallest; the large step degrades
    for profile, expected in (([0.9, 0.1, 0, 0], E - 1), ([0, 0.1, 0.3, 0.6], 0)):
        mean = np.asarray(profile) @ game.local_reward[:, global_state_index(0, np.arange(E), E), HEAVY]
        assert int(np.argmax(mean)) == expected, mean
    drifted = game.local_reward[-1, global_state_index(0, E - 1, E), HEAVY] + FederatedConfig().compute_cost[HEAVY]
    assert drifted < 0, "a large step with drifted clients must lower the global quality"
    np.testing.assert_allclose(client_contribution(FederatedConfig()).shape, (4, 5, 4, 3))


@pytest.fixture(scope="module")
def trained():
    """A fast k=5 training on a small population (no certificate)."""
    game = make_game("federated", {"n": 100})
    config = AlternationConfig(rounds=2, certify=False, eval_seeds=2, eval_rollouts=20, mean_field_batch=50)
    return alternate(game, 5, config, seed=0)


def test_learned_coordinator_uses_the_count_vector(trained):
    actions = trained.global_policy.actions
    varies = [len(set(row)) > 1 for row in actions]
    assert sum(varies) >= actions.shape[0] // 2, "the step level should depend on F in most global states"
    # the smallest step is chosen for an all-drifted sample, the largest for an all-fresh one, at quality 0
    E, L, k = trained.game.num_global_actions, trained.game.num_local_states, trained.k
    fresh, drifted = np.zeros(L, dtype=int), np.zeros(L, dtype=int)
    fresh[0], drifted[-1] = k, k
    s_g = global_state_index(0, E - 1, E)
    assert trained.global_policy.act(np.array([s_g]), fresh[None])[0] > \
        trained.global_policy.act(np.array([s_g]), drifted[None])[0]


@pytest.fixture(scope="module")
def report(trained):
    return federated_check_policies(trained.game, trained.global_policy, trained.local_policy, seeds=[0, 1, 2, 3],
                                    rounds=30)


def test_real_check_learned_server_against_fixed_steps(report):
    """What holds on the true global loss (see the report in the module docstrings).

    The learned server's step depends on the k-sample in a real run (the sample
    changes its choice in some rounds), and the learned pair beats every fixed
    step size with FedAvg-style clients (always light training) on the area
    under the loss curve. It does not beat the best fixed step when that step
    is paired with the learned clients (the tabular model credits large steps
    with fresh clients more than the real problem's sampling noise allows);
    that comparison is reported, not asserted.
    """
    learned = report.method("learned")
    light = [m for m in report.methods if m.name.startswith("fixed") and m.name.endswith("clients light")]
    assert len(light) == 4
    assert np.isfinite([m.auc_mean for m in report.methods]).all()
    assert 0 < report.sample_changed_choice < 1
    for fixed in light:
        assert learned.auc_mean < fixed.auc_mean, (learned.auc_mean, fixed.name, fixed.auc_mean)
    text = format_report(report)
    assert "learned" in text and "fixed eta=2, clients light" in text


def test_real_check_is_deterministic_per_seed(trained, report):
    again = federated_check_policies(trained.game, trained.global_policy, trained.local_policy, seeds=[0, 1, 2, 3],
                                     rounds=30)
    assert [m.per_seed_auc for m in again.methods] == [m.per_seed_auc for m in report.methods]
    other = federated_check_policies(trained.game, trained.global_policy, trained.local_policy, seeds=[5], rounds=30)
    assert other.method("learned").per_seed_auc != report.method("learned").per_seed_auc[:1]


def test_real_check_accepts_a_trained_bundle(trained):
    bundle = type("Trained", (), {"game": trained.game, "global_policy": trained.global_policy,
                                  "local_policy": trained.local_policy})()
    result = federated_check(bundle, seeds=[0], rounds=5)
    assert result.k == 5 and len(result.methods) == 1 + 2 * trained.game.num_global_actions


def test_real_check_rejects_bad_inputs(trained):
    game, gp, lp = trained.game, trained.global_policy, trained.local_policy
    bad = lp.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(GameValidationError, match="NaN"):
        federated_check_policies(game, gp, bad, seeds=[0], rounds=3)
    zones = make_game("zones", {"n": 100})
    with pytest.raises(GameValidationError, match="federated game"):
        federated_check_policies(zones, GlobalPolicy.constant(zones, 5), uniform_local_policy(zones), [0], 3)
    other = GlobalPolicy.constant(make_game("zones", {"n": 100}), 5)
    with pytest.raises(GameValidationError, match="client levels"):
        federated_check_policies(game, other, lp, seeds=[0], rounds=3)
    with pytest.raises(GameValidationError, match="drift_thresholds must be strictly increasing"):
        federated_check_policies(game, gp, lp, [0], 3, FederatedCheckConfig(drift_thresholds=(0.5, 0.25, 1.0)))
    with pytest.raises(GameValidationError, match="quality_thresholds needs 4 values"):
        federated_check_policies(game, gp, lp, [0], 3, FederatedCheckConfig(quality_thresholds=(0.5,)))
    with pytest.raises(GameValidationError, match="n_clients=3"):
        federated_check_policies(game, gp, lp, [0], 3, FederatedCheckConfig(n_clients=3))
    with pytest.raises(GameValidationError, match="at least one seed"):
        federated_check_policies(game, gp, lp, [], 3)


@pytest.fixture(scope="module")
def calibration():
    return calibrate(seeds=range(1000, 1040), k=5)


def test_calibration_is_deterministic_and_uses_seeds_disjoint_from_the_check(calibration):
    again = calibrate(seeds=range(1000, 1040), k=5)
    for name in ("local_transition", "quality_transition", "contribution", "mean_improvement", "level_value"):
        np.testing.assert_array_equal(getattr(again, name), getattr(calibration, name))
    other = calibrate(seeds=range(2000, 2010), k=5)
    assert not np.array_equal(other.contribution, calibration.contribution)
    assert not set(DEFAULT_SEEDS) & set(range(10)), "calibration seeds must differ from the check's seeds 0..9"
    with pytest.raises(GameValidationError, match="at least one seed"):
        calibrate(seeds=[])


def test_calibrated_tables_are_probabilities_that_match_the_real_problem(calibration):
    for table in (calibration.local_transition, calibration.quality_transition):
        assert np.all(table >= 0)
        np.testing.assert_allclose(table.sum(axis=-1), 1.0)
    counts = calibration.local_counts.sum(axis=(1, 2))  # (d, a, d')
    for d in range(1, counts.shape[0]):
        lower = [counts[d, a, :d].sum() / counts[d, a].sum() for a in (SKIP, HEAVY)]
        assert lower[1] > lower[0] + 0.3, (d, lower)  # heavy training pulls a drifted client back far more often
    # the real loss falls: the excess-loss ratio of the levels decreases, and small steps improve it at quality 0
    assert np.all(np.diff(calibration.level_value) < 0)
    assert calibration.mean_improvement[0].min() > 0
    # at the noise floor (top level) the largest step makes things worse than the smallest
    assert calibration.mean_improvement[-1, -1] < calibration.mean_improvement[-1, 0]


def test_calibrated_game_validates():
    config = FederatedConfig(calibration="real")
    game = build_game(config)
    E, Q = len(config.step_sizes), config.quality_levels
    assert isinstance(game, TabularGame) and game.name == "federated" and game.config["calibration"] == "real"
    assert game.num_global_states == Q * E and game.num_local_states == config.drift_levels
    for a in range(E):  # the step level still follows the action
        e_next = game.global_transition[:, a].reshape(-1, Q, E).sum(axis=1)
        np.testing.assert_allclose(e_next[:, a], 1.0)
    # rewards: minus an excess-loss ratio in percent, so within [-100, 100] per agent and worst at quality 0
    assert np.all(np.abs(game.global_reward) <= 100)
    assert game.global_reward[:E].max() < game.global_reward[-E:].min()
