"""`altmarl sweep --jobs N` and `--ray local`: the same rows and checkpoints, bit for bit, as a serial sweep."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest

from altmarl_ros.cli import main
from altmarl_ros.marl.checkpoint import load_checkpoint
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.parallel import check_ray_address, run_jobs

TINY = ["--n", "40", "--rounds", "1", "--k-ref", "6", "--eval-seeds", "2", "--eval-rollouts", "5", "-q",
        "--final-seeds", "2", "--final-rollouts", "4"]
TIMING = {"glearn_seconds", "train_seconds", "certificate_seconds"}  # wall clock: the only columns that may differ
KS, SEEDS = ["1", "3"], ["0", "2"]


def _sweep(out, *extra) -> tuple[list[dict], dict]:
    assert main(["sweep", "--k", ",".join(KS), "--seeds", ",".join(SEEDS), "--out", str(out), *TINY, *extra]) == 0
    with open(out / "sweep.csv") as handle:
        rows = [{key: value for key, value in row.items() if key not in TIMING} for row in csv.DictReader(handle)]
    arrays = {}
    for k in KS:
        for seed in SEEDS:
            checkpoint = load_checkpoint(out / f"k{k}-s{seed}" / "checkpoint.npz")
            arrays[(k, seed)] = {name: checkpoint.array(name) for name in checkpoint.arrays}
    return rows, arrays


def _assert_same(a, b) -> None:
    rows_a, arrays_a = a
    rows_b, arrays_b = b
    assert rows_a == rows_b  # every digit of every non-timing column, in the serial order
    assert arrays_a.keys() == arrays_b.keys()
    for key, named in arrays_a.items():
        assert named.keys() == arrays_b[key].keys()
        for name, array in named.items():
            np.testing.assert_array_equal(array, arrays_b[key][name], err_msg=f"{key} {name}")


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("serial") / "sweep", "--jobs", "1")


def test_rows_follow_the_job_order(serial):
    rows, _ = serial
    assert [(r["k"], r["seed"]) for r in rows] == [(k, s) for k in KS for s in SEEDS]


def test_two_processes_equal_the_serial_sweep(serial, tmp_path):
    _assert_same(serial, _sweep(tmp_path / "sweep", "--jobs", "2"))


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install ray)")
def test_a_local_ray_cluster_equals_the_serial_sweep(serial, tmp_path):
    _assert_same(serial, _sweep(tmp_path / "sweep", "--jobs", "2", "--ray", "local"))


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("job 3 failed")
    return x * x


def test_a_failing_job_is_raised_and_finished_jobs_were_reported():
    finished = []
    with pytest.raises(ValueError, match="job 3 failed"):
        run_jobs(_fails_on_three, [(1,), (2,), (3,)], workers=2, on_done=lambda i, r: finished.append((i, r)))
    assert set(finished) <= {(0, 1), (1, 4)}
    assert run_jobs(_fails_on_three, [(1,), (2,)], workers=2) == [1, 4]


def test_jobs_must_be_positive():
    with pytest.raises(AltmarlError, match="--jobs must be an integer >= 1"):
        run_jobs(_fails_on_three, [(1,)], workers=0)


@pytest.mark.parametrize("address, needle", [
    ("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
    ("ray://127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
    ("headnode", "expected HOST:PORT"),
])
def test_an_unreachable_ray_address_fails_fast(address, needle):
    with pytest.raises(AltmarlError, match=needle):
        check_ray_address(address)


def test_local_jobs_are_capped_by_the_memory_budget(monkeypatch):
    from altmarl_ros.cli import _jobs_that_fit

    monkeypatch.setenv("ALTMARL_MEMORY_BUDGET", "10MiB")
    assert _jobs_that_fit(8, 3 * 2**20, None) == 3  # three 3 MiB runs fit in 10 MiB
    assert _jobs_that_fit(2, 3 * 2**20, None) == 2
    assert _jobs_that_fit(8, 20 * 2**20, "local") == 1  # never below one (that run is checked on its own)
    assert _jobs_that_fit(8, 3 * 2**20, "ray://head:10001") == 8  # a cluster's nodes have their own memory
