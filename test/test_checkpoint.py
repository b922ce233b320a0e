"""Checkpoints: round trip, one digest over everything, and a clear CheckpointError naming the file for every kind
of bad file (each case its own test); temporaries follow the project's pattern, files get the user's umask."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest

from altmarl_ros import runs
from altmarl_ros.marl import checkpoint as ckpt
from altmarl_ros.marl.alternation import AlternationConfig, alternate
from altmarl_ros.marl.checkpoint import META_KEY, load_checkpoint, meta_digest, save_checkpoint
from altmarl_ros.marl.errors import CheckpointError
from altmarl_ros.tasks import make_game

TINY = AlternationConfig(rounds=1, k_ref=4, eval_seeds=2, eval_rollouts=5, mean_field_batch=10,
                         starts=("uniform",))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    game = make_game("zones", {"n": 30, "zones": 4})
    result = alternate(game, 2, TINY, seed=3)
    out = tmp_path_factory.mktemp("run")
    runs.save(result, out, "zones", {"n": 30, "zones": 4})
    return out, result


@pytest.fixture
def good(run_dir):
    return run_dir[0] / "checkpoint.npz"


def test_round_trip_keeps_policies_config_seed_and_gap(run_dir):
    out, result = run_dir
    trained = runs.load(out)
    assert trained.k == 2 and trained.game.n == 30 and trained.game.num_local_states == 4
    np.testing.assert_array_equal(trained.global_policy.actions, result.global_policy.actions)
    np.testing.assert_array_equal(trained.local_policy, result.local_policy)
    assert trained.meta["seed"] == 3
    assert trained.meta["ne_gap"]["global"] == pytest.approx(result.best.global_gap)
    assert set(trained.meta["versions"]) >= {"altmarl_ros", "numpy", "python"}
    assert (out / "history.csv").read_text().count("\n") == 1 + len(result.rounds)


def test_file_stays_a_plain_npz_that_numpy_reads_without_pickle(good):
    with np.load(good, allow_pickle=False) as data:
        names = set(data.files)
        meta = json.loads(data[META_KEY].tobytes().decode())
    assert names == {META_KEY, *meta["arrays"]}
    assert meta["schema_version"] == 2 and meta["digest"].startswith("sha256:")


# --- helpers that build bad files -----------------------------------------------------------

def _contents(path):
    with np.load(path) as data:
        contents = {name: data[name] for name in data.files}
    return json.loads(contents.pop(META_KEY).tobytes().decode()), contents


def _rewrite(path, out, edit_meta=None, edit_arrays=None, resign=False):
    """Rewrite a checkpoint with edits; `resign` recomputes the digest, as a careful forger would."""
    meta, contents = _contents(path)
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(contents)
    if resign:
        meta["digest"] = meta_digest(meta)
    encoded = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(out, **contents, **{META_KEY: encoded})
    return out


def _npy(array=None, header=None, data=b""):
    """The bytes of a .npy member: a real array, or a hand-made header with arbitrary data after it."""
    buffer = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
        return buffer.getvalue()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def _members_of(path):
    meta, contents = _contents(path)
    members = [(f"{name}.npy", _npy(array)) for name, array in contents.items()]
    return meta, members


def _with_meta(meta):
    return (f"{META_KEY}.npy", _npy(np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)))


def _expect(path, match):
    with pytest.raises(CheckpointError, match=match) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)  # every error names the file
    return caught.value


# --- files that are not checkpoints ---------------------------------------------------------

def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.npz", "no checkpoint")


def test_truncated_file(good, tmp_path):
    data = good.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    _expect(bad, "corrupt or truncated")


def test_garbage_file(tmp_path):
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"not a checkpoint at all")
    _expect(bad, "corrupt or truncated")


def test_npy_named_npz(tmp_path):
    bad = tmp_path / "array.npz"
    np.save(tmp_path / "array.npy", np.zeros(3))
    os.replace(tmp_path / "array.npy", bad)
    _expect(bad, "single .npy array, not a checkpoint")


def test_directory_given_as_checkpoint_file(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    _expect(tmp_path / "dir.npz", "no checkpoint")  # a directory means its checkpoint.npz, which is missing


def test_npz_without_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, a=np.zeros(3))
    _expect(path, "not an altmarl checkpoint")


# --- corrupt bytes --------------------------------------------------------------------------

def _data_offset(path, member):
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def test_bit_flips_that_raise_zlib_error(good, tmp_path):
    bad = tmp_path / "flipped.npz"
    raw = bytearray(good.read_bytes())
    start, size = _data_offset(good, "local_q.npy")
    raw[start: start + size] = b"\xff" * size  # deflate block type 3: invalid
    bad.write_bytes(bytes(raw))
    with pytest.raises(zlib.error), np.load(bad) as data:  # what a plain reader hits
        data["local_q"]
    error = _expect(bad, "corrupt or truncated")
    assert "error" in str(error)  # the zlib error is quoted


def test_random_bit_flips_are_an_error_or_harmless(good, tmp_path):
    """Any single flipped bit is either a CheckpointError naming the file, or changes nothing that is read."""
    reference = load_checkpoint(good)
    raw = good.read_bytes()
    rng = np.random.default_rng(0)
    errors = 0
    for trial, position in enumerate(rng.integers(0, len(raw), size=150)):
        flipped = bytearray(raw)
        flipped[position] ^= 1 << int(rng.integers(8))
        bad = tmp_path / f"flip{trial}.npz"
        bad.write_bytes(bytes(flipped))
        try:
            loaded = load_checkpoint(bad)
        except CheckpointError as exc:
            assert str(bad) in str(exc)
            errors += 1
            continue
        assert loaded.meta == reference.meta
        assert set(loaded.arrays) == set(reference.arrays)
        for name, array in reference.arrays.items():
            np.testing.assert_array_equal(loaded.arrays[name], array)
    assert errors > 100  # nearly every byte is data or checksummed


def _central_entry(raw, member):
    """Offset of `member`'s entry in the zip's central directory."""
    index = raw.find(b"PK\x01\x02")
    while index >= 0:
        name_len = struct.unpack("<H", raw[index + 28: index + 30])[0]
        if raw[index + 46: index + 46 + name_len] == member.encode():
            return index
        index = raw.find(b"PK\x01\x02", index + 4)
    raise AssertionError(f"{member} not in the central directory")


def test_bad_crc(good, tmp_path):
    raw = bytearray(good.read_bytes())
    raw[_central_entry(raw, "local_policy.npy") + 16] ^= 0xFF  # the CRC-32 zipfile checks at the member's end
    bad = tmp_path / "crc.npz"
    bad.write_bytes(bytes(raw))
    _expect(bad, "Bad CRC-32")


# --- the digest -----------------------------------------------------------------------------

def test_altered_array_fails_checksum(good, tmp_path):
    def flip(arrays):
        arrays["local_policy"] = arrays["local_policy"][::-1].copy()

    _expect(_rewrite(good, tmp_path / "altered.npz", edit_arrays=flip), "checksum")


def test_altered_metadata_fails_the_digest(good, tmp_path):
    bad = _rewrite(good, tmp_path / "gap.npz", edit_meta=lambda meta: meta["ne_gap"].update(epsilon=0.0))
    _expect(bad, "metadata does not match its digest")


def test_digest_removed(good, tmp_path):
    bad = _rewrite(good, tmp_path / "nodigest.npz", edit_meta=lambda meta: meta.pop("digest"))
    _expect(bad, "has no digest")


def test_array_list_removed_does_not_switch_verification_off(good, tmp_path):
    def drop(meta):
        del meta["arrays"]

    _expect(_rewrite(good, tmp_path / "nolist.npz", edit_meta=drop), "digest")
    # even with a digest recomputed over the edited metadata, a file without its array list is refused
    _expect(_rewrite(good, tmp_path / "nolist-signed.npz", edit_meta=drop, resign=True), "no list of its arrays")


def test_array_list_emptied_leaves_the_arrays_unlisted(good, tmp_path):
    bad = _rewrite(good, tmp_path / "empty.npz", edit_meta=lambda meta: meta.update(arrays={}), resign=True)
    _expect(bad, "does not list")


def test_malformed_array_list_entry(good, tmp_path):
    bad = _rewrite(good, tmp_path / "entry.npz", edit_meta=lambda meta: meta["arrays"].update(local_q=[1, 2]),
                   resign=True)
    _expect(bad, "malformed")


def test_other_schema_version(good, tmp_path):
    _expect(_rewrite(good, tmp_path / "v99.npz", edit_meta=lambda meta: meta.update(schema_version=99)),
            "schema version 99")


def test_other_format(good, tmp_path):
    _expect(_rewrite(good, tmp_path / "fmt.npz", edit_meta=lambda meta: meta.update(format="x")), "format 'x'")


def test_unlisted_member_is_refused_before_it_is_decompressed(good, tmp_path, monkeypatch):
    meta, members = _members_of(good)
    # a member that would raise zlib.error (or fill memory) if it were ever decompressed
    bad = _zip(tmp_path / "extra.npz", [*members, _with_meta(meta), ("evil.npy", b"\x00" * 10_000_000)])
    raw = bytearray(bad.read_bytes())
    start, size = _data_offset(bad, "evil.npy")
    raw[start: start + size] = b"\xff" * size
    bad.write_bytes(bytes(raw))
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    _expect(bad, r"does not list: \['evil.npy'\]")
    assert "evil.npy" not in opened


def test_duplicate_member(good, tmp_path):
    meta, members = _members_of(good)
    with pytest.warns(UserWarning, match="Duplicate name"):
        bad = _zip(tmp_path / "dup.npz", [*members, members[0], _with_meta(meta)])
    _expect(bad, "twice")


def test_missing_array(good, tmp_path):
    meta, members = _members_of(good)
    bad = _zip(tmp_path / "missing.npz", [m for m in members if m[0] != "local_q.npy"] + [_with_meta(meta)])
    _expect(bad, r"missing arrays \['local_q'\]")


def test_stored_shape_differs_from_the_list(good, tmp_path):
    def reshape(arrays):
        arrays["local_q"] = arrays["local_q"].reshape(-1)

    _expect(_rewrite(good, tmp_path / "shape.npz", edit_arrays=reshape), "stored with shape")


def test_stored_dtype_differs_from_the_list(good, tmp_path):
    def widen(arrays):
        arrays["global_actions"] = arrays["global_actions"].astype(np.int64)

    _expect(_rewrite(good, tmp_path / "dtype.npz", edit_arrays=widen), "stored as int64, expected int16")


def test_object_array_is_never_unpickled(good, tmp_path):
    meta, members = _members_of(good)
    meta["arrays"]["evil"] = {"shape": [1], "dtype": "object", "sha256": "0" * 64}
    meta["digest"] = meta_digest(meta)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{}], dtype=object), allow_pickle=True)
    bad = _zip(tmp_path / "pickle.npz", [*members, ("evil.npy", buffer.getvalue()), _with_meta(meta)])
    _expect(bad, "numeric arrays only")


# --- metadata of the wrong type -------------------------------------------------------------

def test_metadata_is_a_json_list(good, tmp_path):
    _, members = _members_of(good)
    bad = _zip(tmp_path / "list.npz", [*members, _with_meta([1, 2, 3])])
    _expect(bad, "metadata of the wrong type: a JSON list")


def test_metadata_is_not_utf8_json(good, tmp_path):
    _, members = _members_of(good)
    bad = _zip(tmp_path / "bytes.npz", [*members, (f"{META_KEY}.npy", _npy(np.frombuffer(b"\xff\xfe{", np.uint8)))])
    _expect(bad, "unreadable metadata")


def test_metadata_stored_as_floats(good, tmp_path):
    _, members = _members_of(good)
    bad = _zip(tmp_path / "floats.npz", [*members, (f"{META_KEY}.npy", _npy(np.zeros(4)))])
    _expect(bad, "stored as float64, expected uint8")


def test_schema_version_of_the_wrong_type(good, tmp_path):
    _expect(_rewrite(good, tmp_path / "v2str.npz", edit_meta=lambda meta: meta.update(schema_version="2")),
            "schema version 2")


# --- sizes checked before anything is decompressed ------------------------------------------

def test_array_header_claiming_terabytes(good, tmp_path):
    meta, members = _members_of(good)
    header = {"descr": "<f8", "fortran_order": False, "shape": (2 ** 40,)}
    meta["arrays"]["huge"] = {"shape": [2 ** 40], "dtype": "float64", "sha256": "0" * 64}
    meta["digest"] = meta_digest(meta)
    bad = _zip(tmp_path / "huge.npz", [*members, ("huge.npy", _npy(header=header, data=b"\x00" * 64)),
                                       _with_meta(meta)])
    _expect(bad, "bytes uncompressed by their metadata; the limit is")


def test_metadata_header_claiming_terabytes(good, tmp_path):
    _, members = _members_of(good)
    header = {"descr": "|u1", "fortran_order": False, "shape": (2 ** 42,)}
    bad = _zip(tmp_path / "hugemeta.npz", [*members, (f"{META_KEY}.npy", _npy(header=header, data=b"{}"))])
    _expect(bad, "header that claims 4398046511104 bytes")


def test_header_that_disagrees_with_the_zip_size(good, tmp_path):
    meta, members = _members_of(good)
    members = [(name, data + b"\x00" * 8 if name == "local_q.npy" else data) for name, data in members]
    bad = _zip(tmp_path / "long.npz", [*members, _with_meta(meta)])
    _expect(bad, "header describes")


def test_declared_uncompressed_size_above_the_bound(good, tmp_path):
    raw = bytearray(good.read_bytes())
    entry = _central_entry(raw, "local_q.npy")
    raw[entry + 24: entry + 28] = struct.pack("<I", 0xFFFF_FFF0)  # the zip's uncompressed size: ~4 GiB
    bad = tmp_path / "bomb.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="'local_q' declares 4294967280 bytes uncompressed; the limit is "
                       "1000000 bytes") as caught:
        load_checkpoint(bad, max_bytes=1_000_000)
    assert str(bad) in str(caught.value)


def test_memory_budget_lowers_the_bound(good, monkeypatch):
    monkeypatch.setenv("ALTMARL_MEMORY_BUDGET", "100B")
    with pytest.raises(CheckpointError, match="ALTMARL_MEMORY_BUDGET"):
        load_checkpoint(good)
    monkeypatch.setenv("ALTMARL_MEMORY_BUDGET", "1GiB")
    assert load_checkpoint(good).meta["seed"] == 3


# --- schema 1, read by explicit migration ---------------------------------------------------

def _schema1(path, out, edit=None):
    """The file as altmarl_ros wrote it before the digest: per-array checksums, no digest."""
    meta, contents = _contents(path)
    meta.pop("digest")
    meta["schema_version"] = 1
    if edit:
        edit(meta, contents)
    np.savez_compressed(out, **contents, **{META_KEY: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    return out


def test_schema1_is_read_with_a_warning(good, tmp_path, caplog):
    old = _schema1(good, tmp_path / "v1.npz")
    with caplog.at_level(logging.WARNING, logger="altmarl_ros.marl.checkpoint"):
        loaded = load_checkpoint(old)
    np.testing.assert_array_equal(loaded.array("local_policy"), load_checkpoint(good).array("local_policy"))
    assert "schema-1 checkpoint" in caplog.text and "not covered by a digest" in caplog.text


def test_schema1_altered_array_fails_checksum(good, tmp_path):
    def edit(meta, arrays):
        arrays["local_q"] = arrays["local_q"] + 1

    _expect(_schema1(good, tmp_path / "v1bad.npz", edit), "checksum")


def test_schema1_without_its_array_list_is_refused(good, tmp_path):
    _expect(_schema1(good, tmp_path / "v1nolist.npz", lambda meta, arrays: meta.pop("arrays")), "no list")


# --- what runs.load checks on top --------------------------------------------------------

def test_mismatched_task_config(good, tmp_path):
    # the arrays were trained with 4 zones; claim 6 zones in the config (digest recomputed)
    bad = _rewrite(good, tmp_path / "six.npz", edit_meta=lambda meta: meta["task_overrides"].update(zones=6),
                   resign=True)
    with pytest.raises(CheckpointError, match="needs"):
        runs.load(bad)


@pytest.mark.parametrize("key, value", [("k", "five"), ("n", -3), ("seed", 1.5), ("k", True)])
def test_metadata_numbers_that_are_not_counts_are_refused(good, tmp_path, key, value):
    bad = _rewrite(good, tmp_path / "meta.npz", edit_meta=lambda meta: meta.update({key: value}), resign=True)
    with pytest.raises(CheckpointError, match=f"metadata '{key}' must be an integer >= 0"):
        runs.load(bad)


def test_expectations_checked(run_dir):
    with pytest.raises(CheckpointError, match="4 zones"):
        runs.load(run_dir[0], expect_zones=5)
    with pytest.raises(CheckpointError, match="task 'zones'"):
        runs.load(run_dir[0], expect_task="warehouse")


# --- writing ------------------------------------------------------------------------------------

def test_save_is_atomic_and_rejects_objects(tmp_path):
    with pytest.raises(CheckpointError, match="object"):
        save_checkpoint(tmp_path / "c.npz", {"bad": np.array([{}], dtype=object)}, {})
    assert not any(tmp_path.iterdir())  # no half-written file left behind


def test_checkpoint_is_a_zip_with_metadata(run_dir):
    with zipfile.ZipFile(run_dir[0] / "checkpoint.npz") as archive:
        assert f"{META_KEY}.npy" in archive.namelist()


def test_caller_metadata_cannot_forge_the_reserved_keys(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", {"a": np.arange(3)},
                           {"digest": "sha256:" + "0" * 64, "arrays": {}, "schema_version": 7, "seed": 1})
    loaded = load_checkpoint(path)
    assert loaded.meta["schema_version"] == 2 and set(loaded.meta["arrays"]) == {"a"} and loaded.meta["seed"] == 1


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "c.npz", {"a": np.arange(3)}, {})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == mode


def _temp(directory, target="checkpoint.npz", pid=999_999, age=3600.0, is_dir=False):
    path = directory / f".{target}.altmarl-tmp-{pid}-{hashlib.sha256(str(age).encode()).hexdigest()[:12]}"
    if is_dir:
        path.mkdir()
        (path / "checkpoint.npz").write_bytes(b"half")
    else:
        path.write_bytes(b"half a checkpoint")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_stale_temporaries_of_a_crashed_save_are_removed(tmp_path):
    stale_file = _temp(tmp_path)
    stale_dir = _temp(tmp_path, target="run", is_dir=True, age=7200.0)
    save_checkpoint(tmp_path / "checkpoint.npz", {"a": np.arange(3)}, {})
    assert not stale_file.exists() and not stale_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


def test_recent_temporaries_are_kept(tmp_path):
    recent = _temp(tmp_path, age=1.0)  # could be a writer that has not taken its lock yet
    save_checkpoint(tmp_path / "checkpoint.npz", {"a": np.arange(3)}, {})
    assert recent.exists()


def test_locked_temporaries_are_kept(tmp_path):
    held = _temp(tmp_path)
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer holds it
        save_checkpoint(tmp_path / "checkpoint.npz", {"a": np.arange(3)}, {})
        assert held.exists()
    finally:
        os.close(fd)
    assert ckpt.clean_stale_temporaries(tmp_path) == [held.name]


def test_only_the_projects_own_pattern_is_cleaned(tmp_path):
    others = [".checkpoint.npz.tmp", "checkpoint.npz.altmarl-tmp-1-0123456789ab", ".x.altmarl-tmp-1-xyz",
              "tmpabc.tmp", "notes.txt"]
    for name in others:
        (tmp_path / name).write_text("mine")
        os.utime(tmp_path / name, (0, 0))
    save_checkpoint(tmp_path / "checkpoint.npz", {"a": np.arange(3)}, {})
    assert all((tmp_path / name).read_text() == "mine" for name in others)
