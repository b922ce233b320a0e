"""Checkpoints: round trip, and a clear CheckpointError for every kind of bad file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from altmarl_ros.marl.alternation import AlternationConfig, alternate
from altmarl_ros.marl.checkpoint import META_KEY, load_checkpoint, save_checkpoint
from altmarl_ros.marl.errors import CheckpointError
from altmarl_ros.tasks import make_game
from altmarl_ros.training import load_trained, save_result

TINY = AlternationConfig(rounds=1, k_ref=4, eval_seeds=2, eval_rollouts=5, mean_field_batch=10)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    game = make_game("zones", {"n": 30, "zones": 4})
    result = alternate(game, 2, TINY, seed=3)
    out = tmp_path_factory.mktemp("run")
    save_result(result, out, "zones", {"n": 30, "zones": 4})
    return out, result


def test_round_trip_keeps_policies_config_seed_and_gap(run_dir):
    out, result = run_dir
    trained = load_trained(out)
    assert trained.k == 2 and trained.game.n == 30 and trained.game.num_local_states == 4
    np.testing.assert_array_equal(trained.global_policy.actions, result.global_policy.actions)
    np.testing.assert_array_equal(trained.local_policy, result.local_policy)
    assert trained.meta["seed"] == 3
    assert trained.meta["ne_gap"]["global"] == pytest.approx(result.best.global_gap)
    assert set(trained.meta["versions"]) >= {"altmarl_ros", "numpy", "python"}
    assert (out / "history.csv").read_text().count("\n") == 1 + len(result.rounds)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.npz")


def test_truncated_file(run_dir, tmp_path):
    data = (run_dir[0] / "checkpoint.npz").read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)


def test_garbage_file(tmp_path):
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)


def test_npz_without_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not an altmarl checkpoint"):
        load_checkpoint(path)


def _rewrite(path, out, edit_meta=None, edit_arrays=None):
    with np.load(path) as data:
        contents = {name: data[name] for name in data.files}
    meta = json.loads(contents.pop(META_KEY).tobytes().decode())
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(contents)
    encoded = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(out, **contents, **{META_KEY: encoded})
    return out


def test_altered_array_fails_checksum(run_dir, tmp_path):
    def flip(arrays):
        arrays["local_policy"] = arrays["local_policy"][::-1].copy()

    bad = _rewrite(run_dir[0] / "checkpoint.npz", tmp_path / "altered.npz", edit_arrays=flip)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(bad)


def test_other_schema_version(run_dir, tmp_path):
    bad = _rewrite(run_dir[0] / "checkpoint.npz", tmp_path / "v99.npz",
                   edit_meta=lambda meta: meta.update(schema_version=99))
    with pytest.raises(CheckpointError, match="schema version 99"):
        load_checkpoint(bad)


def test_mismatched_task_config(run_dir, tmp_path):
    # the arrays were trained with 4 zones; claim 6 zones in the config
    bad = _rewrite(run_dir[0] / "checkpoint.npz", tmp_path / "six.npz",
                   edit_meta=lambda meta: meta["task_overrides"].update(zones=6))
    with pytest.raises(CheckpointError, match="needs"):
        load_trained(bad)


def test_expectations_checked(run_dir):
    with pytest.raises(CheckpointError, match="4 zones"):
        load_trained(run_dir[0], expect_zones=5)
    with pytest.raises(CheckpointError, match="task 'zones'"):
        load_trained(run_dir[0], expect_task="warehouse")


def test_save_is_atomic_and_rejects_objects(tmp_path):
    with pytest.raises(CheckpointError, match="object"):
        save_checkpoint(tmp_path / "c.npz", {"bad": np.array([{}], dtype=object)}, {})
    assert not any(tmp_path.iterdir())  # no half-written file left behind


def test_checkpoint_is_a_zip_with_metadata(run_dir):
    with zipfile.ZipFile(run_dir[0] / "checkpoint.npz") as archive:
        assert f"{META_KEY}.npy" in archive.namelist()
