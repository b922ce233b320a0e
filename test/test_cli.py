"""The `altmarl` command end to end on tiny problems, and its errors."""

from __future__ import annotations

import csv
import json

import pytest

from altmarl_ros.cli import main
from altmarl_ros.sweep import PLOTS, fit_loglog_slope

TINY = ["--n", "40", "--rounds", "1", "--k-ref", "6", "--eval-seeds", "2", "--eval-rollouts", "5", "-q"]  # 3 starts


def test_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "zones", "--k", "2", "--seed", "1", "--out", str(out), *TINY]) == 0
    assert (out / "checkpoint.npz").is_file() and (out / "summary.json").is_file()
    report = tmp_path / "eval.json"
    assert main(["eval", str(out), "--seeds", "3", "--rollouts", "4", "--json", str(report), "-q"]) == 0
    result = json.loads(report.read_text())
    assert result["k"] == 2 and result["n"] == 40 and result["seeds"] == 3
    assert 0.0 <= result["mode_accuracy"] <= 1.0
    assert "mode accuracy" in capsys.readouterr().out


def test_sweep_writes_csv_and_plots(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--k", "1,2", "--out", str(out), "--final-seeds", "2", "--final-rollouts", "4", *TINY]) == 0
    with open(out / "sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["k"]) for r in rows] == [1, 2]
    for name in PLOTS:
        assert (out / name).stat().st_size > 1000
    assert (out / "k1" / "checkpoint.npz").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train", "--k", "0", "--out", "x", "--n", "10"], "k (subsample size) must be >= 1"),
    (["train", "--k", "11", "--out", "x", "--n", "10"], "k=11 exceeds n=10"),
    (["train", "--k", "2", "--out", "x", "--n", "0"], "n (number of local agents)"),
    (["train", "--k", "2", "--out", "x", "--set", "gamma=1.5"], "gamma must lie in the open interval"),
    (["train", "--k", "2", "--out", "x", "--set", "speed=3"], "unknown ZonesConfig keys"),
    (["train", "--k", "2", "--out", "x", "--n", "10", "--k-ref", "20"], "k=20 exceeds n=10"),
    (["eval", "does-not-exist"], "no checkpoint"),
    (["train", "--task", "warehouse", "--learner", "tabular", "--k", "2", "--out", "x"], "use --learner deep"),
    (["train", "--task", "warehouse", "--k", "501", "--out", "x"], "k=501 exceeds n=500"),
    (["train", "--task", "warehouse", "--k", "2", "--out", "x", "--dqn-steps", "0"], "dqn.steps must be >= 1"),
    (["train", "--task", "warehouse", "--k", "2", "--out", "x", "--set", "bins=1"], "bins must be >= 2"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing was written before the error


def test_bad_k_list_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--k", "1,two", "--out", "x"])
    assert "comma-separated integers" in capsys.readouterr().err


def test_loglog_slope_recovers_a_power_law():
    ks = [1, 2, 4, 8, 16]
    fit = fit_loglog_slope(ks, [3.0 * k ** -0.5 for k in ks])
    assert fit.slope == pytest.approx(-0.5) and fit.points_used == 5
    fit = fit_loglog_slope(ks, [1.0, -0.1, 0.5, 0.0, 0.25])
    assert fit.points_dropped == 2


def test_eval_sim_reports_physics_next_to_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "zones", "--k", "2", "--out", str(out), *TINY]) == 0
    png = tmp_path / "last.png"
    assert main(["eval-sim", str(out), "--n", "10", "--episodes", "2", "--rollouts", "5", "--png", str(png),
                 "--set", "decision_period=10", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "total-variation distance" in printed and "kinematic world, n=10, 2 episode(s)" in printed
    assert png.stat().st_size > 10_000
    assert main(["eval-sim", str(out), "--n", "500", "-q"]) == 2
    assert "do not fit" in capsys.readouterr().err
    assert main(["eval-sim", str(out), "--set", "physics_rate=-5", "-q"]) == 2
    assert "physics_rate must be a positive number" in capsys.readouterr().err


DEEP_TINY = ["--n", "40", "--rounds", "1", "--dqn-steps", "60", "--ppo-iterations", "2", "--eval-seeds", "2",
             "--eval-rollouts", "4", "-q"]


def test_deep_train_eval_and_sweep_on_warehouse(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "warehouse", "--k", "3", "--out", str(out), "--certify", "none", *DEEP_TINY]) == 0
    report = tmp_path / "eval.json"
    assert main(["eval", str(out), "--seeds", "2", "--rollouts", "3", "--baselines", "--json", str(report), "-q"]) == 0
    result = json.loads(report.read_text())
    assert result["learner"] == "deep" and result["k"] == 3 and result["n"] == 40
    assert set(result["baselines"]) == {"random_dispatcher_return", "random_return"}
    assert "random dispatcher, trained robots" in capsys.readouterr().out
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--task", "warehouse", "--k", "1,3", "--seeds", "0,1", "--out", str(sweep), "--certify",
                 "none", "--final-seeds", "2", "--final-rollouts", "3", *DEEP_TINY]) == 0
    with open(sweep / "sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["k"]), int(r["seed"])) for r in rows] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert json.loads((sweep / "baselines.json").read_text())["random_return_mean"] > 0
    assert (sweep / PLOTS[0]).stat().st_size > 1000 and (sweep / "k3-s1" / "checkpoint.npz").is_file()


def test_federated_eval_runs_the_real_check(tmp_path, capsys):
    out = tmp_path / "fed"
    assert main(["train", "--task", "federated", "--k", "2", "--out", str(out), *TINY]) == 0
    report = tmp_path / "eval.json"
    assert main(["eval", str(out), "--seeds", "2", "--rollouts", "3", "--federated-seeds", "2", "--json",
                 str(report), "-q"]) == 0
    assert "fixed eta=1, clients light" in capsys.readouterr().out
    methods = json.loads(report.read_text())["federated_check"]["methods"]
    assert any(m["name"] == "learned" for m in methods)


def test_deep_federated_eval_runs_the_real_check_on_the_tabulated_networks(tmp_path, capsys):
    out = tmp_path / "fed-deep"
    assert main(["train", "--task", "federated", "--learner", "deep", "--k", "2", "--out", str(out), "--certify",
                 "none", *DEEP_TINY]) == 0
    assert main(["eval", str(out), "--seeds", "2", "--rollouts", "3", "--federated-seeds", "1", "-q"]) == 0
    assert "fixed eta=1, clients light" in capsys.readouterr().out


def test_train_without_certificate_says_not_computed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--k", "2", "--starts", "uniform", "--no-certify", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "NE gap: not computed" in printed and "nan" not in printed
    with open(out / "history.csv") as handle:
        assert {row["start"] for row in csv.DictReader(handle)} == {"uniform"}
    assert main(["eval", str(out), "--seeds", "2", "--rollouts", "3", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "NE gap (training)   not computed" in printed and "nan" not in printed


def test_train_prints_what_the_certificate_bounds(tmp_path, capsys):
    assert main(["train", "--k", "2", "--out", str(tmp_path / "run"), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "a lower bound: against a full-observation reference at k_ref=6" in printed
    assert "(start " in printed or "best round" in printed


def test_unknown_start_is_refused(tmp_path, capsys):
    assert main(["train", "--k", "2", "--starts", "uniform,sideways", "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "starts must be a non-empty list of distinct names from ['uniform', 'static', 'greedy']" in \
        capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_eval_sim_honours_the_world_configs_backend_and_gui_unless_a_flag_is_given(tmp_path):
    import argparse

    from altmarl_ros.cli.eval_sim import world_config

    yaml = tmp_path / "world.yaml"
    yaml.write_text("world:\n  backend: pybullet\n  gui: true\n  decision_period: 9.0\n")

    def args(**given):
        return argparse.Namespace(world_config=yaml, world_set=[], backend=None, gui=None, **given)

    from_file = world_config(args(), 5)
    assert (from_file.backend, from_file.gui, from_file.decision_period) == ("pybullet", True, 9.0)
    flagged = world_config(argparse.Namespace(world_config=yaml, world_set=["decision_period=3"],
                                              backend="kinematic", gui=None), 5)
    assert (flagged.backend, flagged.gui, flagged.decision_period) == ("kinematic", True, 3.0)
    plain = world_config(argparse.Namespace(world_config=None, world_set=[], backend=None, gui=None), 5)
    assert (plain.backend, plain.gui) == ("kinematic", False)  # WorldConfig's own defaults
