"""Every invalid value is a clear error (what was wrong, what is valid, which file), never a traceback or a silent
accept: YAML of the wrong shape or type in every section, flags out of range, NaN, a probability above 1, a
checkpoint of the wrong task. Each case is its own test."""

from __future__ import annotations

import os

import pytest

from altmarl_ros import cli
from altmarl_ros.cli import main
from altmarl_ros.marl.config import parse_size
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.tasks import make_game

TINY = ["--n", "40", "--rounds", "1", "--k-ref", "6", "--eval-seeds", "2", "--eval-rollouts", "5", "--no-certify",
        "-q"]


def _never(*args, **kwargs):
    raise AssertionError("work started although the input was invalid")


@pytest.fixture(autouse=True)
def _no_work(monkeypatch, tmp_path):
    """Nothing may train or write: every test here is an input error that stops before the work."""
    monkeypatch.setattr(cli, "alternate", _never)
    monkeypatch.chdir(tmp_path)


def _error(argv, capsys):
    """Run the command; it must fail with status 2 and say why on stderr (AltmarlError or argparse)."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: usage + the error
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _yaml(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _train_with(tmp_path, text, *extra):
    return ["train", "--k", "2", "--out", str(tmp_path / "run"), "--config", str(_yaml(tmp_path, text)), *extra, "-q"]


# --- YAML of the wrong shape or type, section by section ------------------------------------

def test_task_section_that_is_a_number(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "task: 5\n"), capsys)
    assert f"{tmp_path / 'config.yaml'}: `task:` must be a mapping of keys to values (e.g. task: {{n: 1000}}), " \
           "got int 5" in err


def test_alternation_section_that_is_a_list(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "alternation: [1, 2]\n"), capsys)
    assert "`alternation:` must be a mapping" in err and "got list [1, 2]" in err


def test_deep_section_that_is_a_string(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "deep: fast\n"), capsys)
    assert "`deep:` must be a mapping" in err and "got str 'fast'" in err


def test_rounds_given_as_a_string(tmp_path, capsys):
    err = _error(_train_with(tmp_path, 'alternation: {rounds: "3"}\n'), capsys)
    assert "config.yaml: in `alternation:`, rounds must be an integer, got '3'" in err


def test_certify_given_as_the_string_no(tmp_path, capsys):
    err = _error(_train_with(tmp_path, 'alternation: {certify: "no"}\n'), capsys)
    assert "in `alternation:`, certify must be true or false, got 'no'" in err


def test_deep_certify_that_is_not_a_mode(tmp_path, capsys):
    err = _error(_train_with(tmp_path, 'deep: {certify: "no"}\n', "--task", "warehouse"), capsys)
    assert "in `deep:`, certify must be one of ('final', 'every_round', 'none'), got 'no'" in err


def test_top_level_certify(tmp_path, capsys):
    err = _error(_train_with(tmp_path, 'certify: "no"\n'), capsys)
    assert "unknown top-level keys ['certify']; valid: ['alternation', 'deep', 'task']" in err


def test_top_level_key_that_is_not_a_name(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "1: x\ntask: {}\n"), capsys)
    assert "unknown top-level keys ['1']" in err


def test_yaml_that_is_a_list(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "- task\n"), capsys)
    assert "must hold a mapping of keys to values, got list" in err


def test_yaml_that_does_not_parse(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "task: {zones: [\n"), capsys)
    assert "is not valid YAML" in err


def test_nan_in_yaml(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "alternation: {gap_tol: .nan}\n"), capsys)
    assert "in `alternation:`, gap_tol must be a finite number, got nan" in err


def test_negative_gap_tol_in_yaml(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "alternation: {gap_tol: -1}\n"), capsys)
    assert "gap_tol must be a number >= 0" in err


def test_unknown_local_method_in_yaml(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "alternation: {local_method: fast}\n"), capsys)
    assert "local_method must be one of ['exact', 'sampled'], got 'fast'" in err


def test_zero_m_in_yaml(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "alternation: {m: 0}\n"), capsys)
    assert "in `alternation:`, m must be >= 1, got 0" in err


def test_k_ref_given_as_a_string(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "alternation: {k_ref: sixty}\n"), capsys)
    assert "k_ref must be an integer, got 'sixty'" in err


def test_zones_given_as_a_fraction(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "task: {zones: 2.5}\n"), capsys)
    assert "config.yaml: in `task:`, zones must be an integer, got 2.5" in err


def test_list_key_given_as_a_string(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "task: {action_bonus: high}\n"), capsys)
    assert "action_bonus must be a list, got 'high'" in err


def test_deep_dqn_that_is_a_number(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "deep: {dqn: 5}\n", "--task", "warehouse"), capsys)
    assert "deep.dqn must be a mapping of keys to values, got 5" in err


def test_deep_ppo_key_of_the_wrong_type(tmp_path, capsys):
    err = _error(_train_with(tmp_path, "deep: {ppo: {greedy: maybe}}\n", "--task", "warehouse"), capsys)
    assert "in `deep:`, greedy must be true or false, got 'maybe'" in err


def test_set_without_a_value(tmp_path, capsys):
    err = _error(["train", "--k", "2", "--out", "run", "--set", "zones=", "-q"], capsys)
    assert "zones must be an integer, got nothing (null)" in err


def test_world_section_that_is_a_number(tmp_path, capsys):
    (tmp_path / "world.yaml").write_text("world: 5\n")
    err = _error(["eval-sim", str(_zones_run(tmp_path, capsys)), "--world-config", str(tmp_path / "world.yaml"),
                  "-q"], capsys)
    assert "world.yaml: `world:` must be a mapping of world keys to values" in err


def test_world_key_of_the_wrong_type(tmp_path, capsys):
    err = _error(["eval-sim", str(_zones_run(tmp_path, capsys)), "--set", "transition_noise=5", "-q"], capsys)
    assert "transition_noise must be a string, got 5" in err


# --- flags --------------------------------------------------------------------------------

def test_gap_tol_nan(capsys):
    err = _error(["train", "--k", "2", "--out", "run", "--gap-tol", "nan"], capsys)
    assert "argument --gap-tol: expected a finite number >= 0, got 'nan'" in err


def test_gap_tol_negative(capsys):
    err = _error(["train", "--k", "2", "--out", "run", "--gap-tol", "-0.5"], capsys)
    assert "argument --gap-tol: expected a finite number >= 0, got '-0.5'" in err


def test_tol_zero(capsys):
    err = _error(["train", "--k", "2", "--out", "run", "--tol", "0"], capsys)
    assert "argument --tol: expected a finite number > 0, got '0'" in err


def test_local_temperature_inf(capsys):
    err = _error(["train", "--k", "2", "--out", "run", "--local-temperature", "inf"], capsys)
    assert "argument --local-temperature: expected a finite number > 0, got 'inf'" in err


def test_rounds_zero(capsys):
    err = _error(["train", "--k", "2", "--out", "run", "--rounds", "0"], capsys)
    assert "argument --rounds: expected an integer >= 1, got '0'" in err


def test_negative_seed(capsys):
    err = _error(["train", "--k", "2", "--out", "run", "--seed", "-1"], capsys)
    assert "argument --seed: expected an integer >= 0, got '-1'" in err


def test_eval_seeds_zero(capsys):
    err = _error(["eval", "run", "--seeds", "0"], capsys)
    assert "argument --seeds: expected an integer >= 1, got '0'" in err


def test_eval_rollouts_not_a_number(capsys):
    err = _error(["eval", "run", "--rollouts", "many"], capsys)
    assert "argument --rollouts: expected an integer >= 1, got 'many'" in err


def test_eval_sim_episodes_zero(capsys):
    err = _error(["eval-sim", "run", "--episodes", "0"], capsys)
    assert "argument --episodes: expected an integer >= 1, got '0'" in err


def test_sim_steps_negative(capsys):
    err = _error(["sim", "--policy", "run", "--steps", "-1"], capsys)
    assert "argument --steps: expected an integer >= 0, got '-1'" in err


def test_sim_timeout_negative(capsys):
    err = _error(["sim", "--policy", "run", "--timeout", "-5"], capsys)
    assert "argument --timeout: expected a finite number > 0, got '-5'" in err


def test_sim_speedup_nan(capsys):
    err = _error(["sim", "--policy", "run", "--speedup", "nan"], capsys)
    assert "argument --speedup: expected a finite number > 0, got 'nan'" in err


def test_sweep_final_seeds_zero(capsys):
    err = _error(["sweep", "--k", "1", "--out", "s", "--final-seeds", "0"], capsys)
    assert "argument --final-seeds: expected an integer >= 1, got '0'" in err


def test_sweep_negative_training_seed(capsys):
    err = _error(["sweep", "--k", "1", "--out", "s", "--seeds", "0,-2"], capsys)
    assert "argument --seeds: seeds are integers >= 0, got '0,-2'" in err


# --- a probability above 1 is refused, not capped -------------------------------------------

def test_drift_probability_above_one_is_refused(capsys):
    err = _error(["train", "--task", "federated", "--k", "2", "--out", "run", "--set", "drift_step_prob=0.6", "-q"],
                 capsys)
    assert "drift probability drift_base_prob + drift_step_prob * eta is 1.25 > 1 at step size 2.0" in err


def test_drift_probability_of_exactly_one_is_valid():
    game = make_game("federated", {"drift_base_prob": 0.0, "drift_step_prob": 0.5, "n": 20})
    assert game.local_transition.max() <= 1.0


def test_drift_probability_is_not_checked_when_calibrated_from_the_real_problem():
    from altmarl_ros.tasks.config import _federated_drift_probability
    from altmarl_ros.tasks.federated import FederatedConfig

    _federated_drift_probability(FederatedConfig(calibration="real", drift_step_prob=0.9))  # unused numbers


# --- checkpoints of the wrong kind ----------------------------------------------------------

def _zones_run(tmp_path, capsys):
    out = tmp_path / "zones-run"
    if not out.exists():
        from altmarl_ros.marl.alternation import alternate

        cli.alternate = alternate  # this one training run is the fixture, not the input under test
        try:
            assert main(["train", "--k", "2", "--out", str(out), *TINY]) == 0
        finally:
            cli.alternate = _never
        capsys.readouterr()
    return out


def test_federated_checkpoint_given_to_eval_sim(tmp_path, capsys, monkeypatch):
    from altmarl_ros.marl.alternation import alternate

    out = tmp_path / "fed"
    monkeypatch.setattr(cli, "alternate", alternate)
    assert main(["train", "--task", "federated", "--k", "2", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    err = _error(["eval-sim", str(out), "--episodes", "1", "-q"], capsys)
    assert f"{out / 'checkpoint.npz'} holds a 'federated' run; eval-sim drives robots between the zones" in err
    assert "runs zones policies only" in err


# --- --memory-budget ----------------------------------------------------------------------

def test_memory_budget_sets_the_variable_before_any_work(monkeypatch, capsys):
    monkeypatch.delenv("ALTMARL_MEMORY_BUDGET", raising=False)
    _error(["eval", "no-such-run", "--memory-budget", "8GiB", "-q"], capsys)
    assert os.environ["ALTMARL_MEMORY_BUDGET"] == str(8 * 2 ** 30)


def test_memory_budget_that_is_not_a_size(capsys):
    err = _error(["eval", "run", "--memory-budget", "12XB"], capsys)
    assert "argument --memory-budget: expected a size like 8GiB, 500MB or 1000000" in err


@pytest.mark.parametrize("text, size", [("8GiB", 8 * 2 ** 30), ("500MB", 500 * 10 ** 6), ("1.5 GB", 1_500_000_000),
                                        ("123", 123), ("64kib", 65536)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1GB", "GB", "1e9", "8 GiB extra", "nan"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError, match="expected a size|at least 1 byte"):
        parse_size(text)


def test_memory_budget_is_documented_in_every_subcommand_help(capsys):
    for command in ("train", "eval", "eval-sim", "sim", "sweep", "render"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--memory-budget SIZE" in capsys.readouterr().out


def test_config_from_mapping_refuses_a_non_mapping():
    from altmarl_ros.tasks.config import config_from_mapping
    from altmarl_ros.tasks.zones import ZonesConfig

    with pytest.raises(GameValidationError, match="ZonesConfig settings must be a mapping of keys to values, got int"):
        config_from_mapping(ZonesConfig, 5)
