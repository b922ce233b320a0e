"""No silent loss: a run directory is one complete run after a SIGKILL at any point, `--out` onto a run needs
--force (which replaces the run only once the new one is complete), `--out` is checked writable before training,
stale temporaries are cleaned."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import time

import numpy as np
import pytest

from altmarl_ros import cli, runs
from altmarl_ros.cli import main
from altmarl_ros.marl import checkpoint as ckpt
from altmarl_ros.marl.checkpoint import clean_stale_temporaries, is_temp_name, load_checkpoint

TINY = ["--n", "40", "--rounds", "1", "--k-ref", "6", "--eval-seeds", "2", "--eval-rollouts", "5", "--no-certify",
        "-q"]


# --- a run directory under SIGKILL ----------------------------------------------------------

def _save_generation(out, generation):
    """One run whose checkpoint, summary and history all carry `generation` (sizes vary, so writes take time)."""
    arrays = {"q": np.full((60 + generation % 7, 40), generation, dtype=np.float32),
              "noise": np.random.default_rng(generation).random(20_000)}
    meta = {"task": "test", "k": 1, "n": 1, "seed": generation, "best_round": 1, "ne_gap": {"global": 0.0},
            "generation": generation}
    history = [{"round": r, "generation": generation} for r in range(1, 2 + generation % 3)]
    runs.write_run(out, arrays, meta, history, {"round": 1, "generation": generation})


def _generation(out):
    """The generation the run directory holds; fails unless checkpoint, summary and history are one run."""
    checkpoint = load_checkpoint(out)
    generation = checkpoint.meta["generation"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == generation and summary["best_round_record"]["generation"] == generation
    with open(out / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["generation"]) for r in rows] == [generation] * (1 + generation % 3)
    assert np.all(checkpoint.array("q") == generation)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.csv", "summary.json"]
    return generation


def _in_child(work):
    """Run `work` in a forked child; return whether it died of SIGKILL."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            work()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _kill_at(step_number, exchange=True):
    """A child's setup: SIGKILL itself at the `step_number`-th step of a save (ckpt._fault points)."""
    calls = []

    def hook(step):
        calls.append(step)
        if len(calls) == step_number:
            os.kill(os.getpid(), signal.SIGKILL)

    ckpt._fault_hook = hook
    if not exchange:
        ckpt.exchange = lambda a, b: False


def _steps_of_a_save(out, exchange):
    """The fault points a save onto an existing run passes, in order."""
    _save_generation(out, 0)
    steps = []
    ckpt._fault_hook = steps.append
    real = ckpt.exchange
    if not exchange:
        ckpt.exchange = lambda a, b: False
    try:
        _save_generation(out, 1)
    finally:
        ckpt._fault_hook, ckpt.exchange = None, real
    return steps


@pytest.mark.parametrize("exchange", [True, False], ids=["rename-exchange", "rename-aside"])
def test_sigkill_at_every_step_of_a_save_leaves_one_complete_run(tmp_path, exchange):
    steps = _steps_of_a_save(tmp_path / "probe", exchange)
    assert steps[-1] in ("exchanged", "installed") and len(steps) >= 3
    out = tmp_path / "run"
    _save_generation(out, 0)
    for number in range(1, len(steps) + 1):
        previous = _generation(out)

        def work(number=number, previous=previous):
            _kill_at(number, exchange)
            _save_generation(out, previous + 1)

        assert _in_child(work), f"the save was not killed at step {number} ({steps[number - 1]})"
        held = _generation(out)  # the old run or the new one, complete either way
        assert held in (previous, previous + 1)
        assert held == previous + 1 if steps[number - 1] in ("exchanged", "installed") else held == previous
    clean_stale_temporaries(tmp_path, older_than=0)  # the killed saves no longer hold their temporaries' locks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe", "run"]


def test_sigkill_at_random_times_while_saving_in_a_loop(tmp_path):
    out = tmp_path / "run"
    _save_generation(out, 0)
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(20):
        first = _generation(out) + 1
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child saves generation after generation until killed
            try:
                for generation in range(first, first + 10_000):
                    _save_generation(out, generation)
            finally:
                os._exit(0)
        time.sleep(float(rng.uniform(0.0, 0.15)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        held = _generation(out)
        assert held >= seen  # never an older run than one seen before
        seen = held
    assert seen > 0  # some saves completed between the kills
    clean_stale_temporaries(tmp_path, older_than=0)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # every killed save's temporaries were removable


def test_other_files_in_a_run_directory_are_kept(tmp_path):
    out = tmp_path / "run"
    _save_generation(out, 0)
    (out / "eval.json").write_text("{}")
    (out / "frames").mkdir()
    (out / "frames" / "last.png").write_bytes(b"png")
    _save_generation(out, 1)
    assert load_checkpoint(out).meta["generation"] == 1
    assert (out / "eval.json").read_text() == "{}" and (out / "frames" / "last.png").read_bytes() == b"png"


def test_a_replaced_run_directory_keeps_its_permissions(tmp_path):
    out = tmp_path / "run"
    _save_generation(out, 0)
    out.chmod(0o700)
    _save_generation(out, 1)
    assert out.stat().st_mode & 0o777 == 0o700


def test_a_run_directory_moved_aside_by_a_killed_save_is_put_back(tmp_path):
    out = tmp_path / "run"
    _save_generation(out, 0)
    aside = tmp_path / ".run.altmarl-old-1-0123456789ab"
    os.rename(out, aside)  # what a save without RENAME_EXCHANGE killed between its two renames leaves
    assert load_checkpoint(out).meta["generation"] == 0  # readers put it back
    assert not aside.exists()


def test_stale_staging_directories_are_removed_by_the_next_save(tmp_path):
    out = tmp_path / "run"
    stale = tmp_path / ".run.altmarl-tmp-12345-0123456789ab"
    stale.mkdir()
    (stale / "checkpoint.npz").write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    _save_generation(out, 0)
    assert not stale.exists() and [p.name for p in tmp_path.iterdir()] == ["run"]


# --- altmarl train --out --------------------------------------------------------------------

def _no_training(*args, **kwargs):
    raise AssertionError("training started although --out was refused")


@pytest.fixture
def trained_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--k", "2", "--seed", "1", "--out", str(out), *TINY]) == 0
    return out


def test_out_onto_an_existing_run_is_refused(trained_run, capsys, monkeypatch):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir()}
    monkeypatch.setattr(cli, "alternate", _no_training)
    assert main(["train", "--k", "2", "--out", str(trained_run), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"--out {trained_run} already holds a run" in err and "pass --force" in err
    assert {p.name: p.read_bytes() for p in trained_run.iterdir()} == before


def test_force_keeps_the_old_run_until_the_new_one_is_complete(trained_run, capsys, monkeypatch):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "alternate", interrupted)
    assert main(["train", "--k", "2", "--seed", "2", "--out", str(trained_run), "--force", *TINY]) == 130
    assert {p.name: p.read_bytes() for p in trained_run.iterdir()} == before
    monkeypatch.undo()
    assert main(["train", "--k", "2", "--seed", "2", "--out", str(trained_run), "--force", *TINY]) == 0
    assert json.loads((trained_run / "summary.json").read_text())["seed"] == 2
    assert load_checkpoint(trained_run).meta["seed"] == 2


def test_out_holding_other_files_is_refused_even_with_force(tmp_path, capsys, monkeypatch):
    (tmp_path / "thesis.tex").write_text("mine")
    monkeypatch.setattr(cli, "alternate", _no_training)
    assert main(["train", "--k", "2", "--out", str(tmp_path), "--force", *TINY]) == 2
    assert "holds files that are not an altmarl run (thesis.tex)" in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "mine"


def test_out_that_is_a_file_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "run").write_text("x")
    monkeypatch.setattr(cli, "alternate", _no_training)
    assert main(["train", "--k", "2", "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "is a file; a run is written as a directory" in capsys.readouterr().err


def test_out_below_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(cli, "alternate", _no_training)
    assert main(["train", "--k", "2", "--out", str(tmp_path / "file" / "run"), *TINY]) == 2
    assert f"cannot be created: {tmp_path / 'file'} is a file, not a directory" in capsys.readouterr().err


def test_out_parents_are_created_and_the_probe_cleaned(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    assert main(["train", "--k", "2", "--out", str(out), *TINY]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]  # no probe or staging left


def test_out_on_a_full_disk_is_refused_before_training(tmp_path, capsys, monkeypatch):
    def full(directory):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("altmarl_ros.runs.probe_writable", full)
    monkeypatch.setattr(cli, "alternate", _no_training)
    assert main(["train", "--k", "2", "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "is not writable: cannot write in" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_in_a_read_only_directory_is_refused_before_training(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    monkeypatch.setattr(cli, "alternate", _no_training)
    try:
        assert main(["train", "--k", "2", "--out", str(locked / "run"), *TINY]) == 2
    finally:
        locked.chmod(0o755)
    assert "is not writable" in capsys.readouterr().err


def test_out_that_is_the_current_directory_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "alternate", _no_training)
    assert main(["train", "--k", "2", "--out", ".", *TINY]) == 2
    assert "is the current directory or one above it" in capsys.readouterr().err


def test_a_full_disk_at_save_time_is_a_clear_error_and_keeps_the_old_run(trained_run, capsys, monkeypatch):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(trained_run / "checkpoint.npz"))

    monkeypatch.setattr("altmarl_ros.runs.write_checkpoint", full)
    assert main(["train", "--k", "2", "--seed", "5", "--out", str(trained_run), "--force", *TINY]) == 2
    err = capsys.readouterr().err
    assert f"could not save the run to --out {trained_run}: No space left on device" in err
    assert {p.name: p.read_bytes() for p in trained_run.iterdir()} == before
    assert [p.name for p in trained_run.parent.iterdir()] == ["run"]  # the staging directory was removed


def test_probe_leaves_nothing_behind(tmp_path):
    ckpt.probe_writable(tmp_path / "new")
    assert list((tmp_path / "new").iterdir()) == []


def test_temporary_names_follow_the_projects_pattern(tmp_path):
    name = ckpt.temp_name(tmp_path / "checkpoint.npz").name
    assert name.startswith(".checkpoint.npz.altmarl-tmp-") and is_temp_name(name)


# --- altmarl sweep --out, eval --json, sim --checkpoint-out ---------------------------------

def test_sweep_out_onto_an_existing_sweep_needs_force(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.csv").write_text("k\n1\n")
    (out / "k1").mkdir()
    monkeypatch.setattr("altmarl_ros.sweep.alternate", _no_training)
    assert main(["sweep", "--k", "1", "--out", str(out), *TINY]) == 2
    assert f"--out {out} already holds a sweep (k1, sweep.csv)" in capsys.readouterr().err
    (out / "paper.pdf").write_text("mine")
    assert main(["sweep", "--k", "1", "--out", str(out), "--force", *TINY]) == 2
    assert "not part of an altmarl sweep (paper.pdf)" in capsys.readouterr().err


def test_eval_json_into_a_directory_is_refused_before_evaluating(trained_run, tmp_path, capsys):
    assert main(["eval", str(trained_run), "--json", str(tmp_path), "-q"]) == 2
    assert "--json" in capsys.readouterr().err


def test_sim_checkpoint_out_below_a_file_is_refused_before_starting(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["sim", "--policy", str(tmp_path), "--checkpoint-out", str(tmp_path / "file" / "q"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--checkpoint-out {tmp_path / 'file' / 'q'} is not writable" in err
