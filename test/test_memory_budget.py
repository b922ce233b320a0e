"""The memory budget (altmarl_ros/marl/budget.py): configs, flags and checkpoint metadata that imply more memory than
the budget are refused before anything is allocated, with the estimate in the message (issue 9, point 2).

The issue's cases run as subprocesses under a hard address-space limit (RLIMIT_AS, 2 GiB), so a regression fails
as a MemoryError or a killed child instead of taking the machine down; each asserts exit code 2, the message (what,
the estimate, the budget) and the child's peak RSS. The estimates are checked against real allocations: the arrays'
nbytes (within 20 %) and tracemalloc's peak (an upper bound, not far above it).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import textwrap
import tracemalloc
from math import comb
from pathlib import Path

import numpy as np
import pytest

from altmarl_ros import runs
from altmarl_ros.marl import budget
from altmarl_ros.marl.alternation import AlternationConfig, alternate
from altmarl_ros.marl.budget import ENV_VAR, MemoryBudgetError
from altmarl_ros.marl.checkpoint import load_checkpoint, save_checkpoint
from altmarl_ros.marl.counts import CountIndex, _enumerate_compositions
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.marl.evaluation import rollout
from altmarl_ros.marl.glearn import ExactCountTransition, SampledCountTransition, g_learn
from altmarl_ros.marl.llearn import local_gap, mean_field
from altmarl_ros.marl.policies import GlobalPolicy, uniform_local_policy
from altmarl_ros.tasks import federated, make_env, make_game, zones
from altmarl_ros.tasks.config import config_from_mapping

CHILD_ADDRESS_SPACE = 2 * 2**30  # RLIMIT_AS of every child: a regression dies there, not in the OOM killer
CHILD_PEAK_RSS = 300 * 2**20  # what a refused command may take at most (interpreter and libraries included)
# what a command that runs the compiled G-LEARN kernels takes beyond its arrays' estimate: the interpreter, numba
# and LLVM (which compile the kernels when numba's cache is cold) and the kernel threads' malloc arenas; measured
# for the default k = 5 training: 260 MB with a warm cache, 354 MB with a cold one
KERNEL_RUN_OVERHEAD = 400 * 2**20
GAME_ARRAYS = ("global_transition", "local_transition", "global_reward", "local_reward", "init_global",
               "init_local_alpha")


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    """Every test starts from the default budget, whatever the environment running the tests sets."""
    monkeypatch.delenv(ENV_VAR, raising=False)


# --- the budget ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("8GiB", 8 * 2**30), ("500MB", 500 * 10**6), ("123456", 123456),
                                        (" 2 KiB ", 2048), ("1.5GiB", 3 * 2**29), ("3gb", 3 * 10**9)])
def test_budget_from_the_environment(monkeypatch, text, size):
    monkeypatch.setenv(ENV_VAR, text)
    assert budget.budget() == size
    assert f"set by {ENV_VAR}" in budget.budget_and_source()[1]


@pytest.mark.parametrize("text", ["lots", "-1", "0", "8XB", "1e9", "nan", "8 GiB of RAM"])
def test_a_bad_budget_is_a_clear_error(monkeypatch, text):
    monkeypatch.setenv(ENV_VAR, text)
    with pytest.raises(MemoryBudgetError, match=ENV_VAR) as caught:
        budget.budget()
    assert isinstance(caught.value, AltmarlError) and isinstance(caught.value, ValueError)
    with pytest.raises(MemoryBudgetError, match=ENV_VAR):  # every check reports it, not only budget()
        CountIndex(3, 5)


def test_default_budget_is_half_the_memory_this_process_may_use(monkeypatch):
    limit, what = budget.memory_limit()
    assert budget.budget() == limit * budget.DEFAULT_PERCENT // 100
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < limit <= physical
    monkeypatch.setenv(ENV_VAR, "  ")  # blank: the default
    assert budget.budget() == limit * budget.DEFAULT_PERCENT // 100
    assert "50 %" in budget.budget_and_source()[1]


def test_default_budget_follows_rlimit_as():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.RLIM_INFINITY)); "
            "from altmarl_ros.marl import budget; print(budget.budget(), budget.budget_and_source()[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_child_env(), check=True)
    assert out.stdout.split()[0] == str(3 * 2**29)
    assert "RLIMIT_AS" in out.stdout


def test_check_message_names_what_the_estimate_the_budget_and_the_way_out(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1GiB")
    assert budget.check(2**30, "exactly the budget") == 2**30
    with pytest.raises(MemoryBudgetError) as caught:
        budget.check(3 * 2**30, "the thing", "reduce the thing")
    message = str(caught.value)
    for needle in ("the thing needs about 3.0 GiB", "memory budget of 1.0 GiB", f"set by {ENV_VAR}=1GiB",
                   "reduce the thing", f"{ENV_VAR}=SIZE", "--memory-budget SIZE"):
        assert needle in message
    assert (caught.value.estimate, caught.value.budget) == (3 * 2**30, 2**30)


def test_sizes_print_without_overflow():
    assert budget.format_bytes(512) == "512 B"
    assert budget.format_bytes(3 * 2**29) == "1.5 GiB"
    assert budget.format_bytes(10**400).startswith("2^1328 ")  # far beyond a float
    assert budget.format_count(comb(10**6, 10**4)).startswith("2^")  # more digits than int->str allows
    assert budget.format_count(70_058_751) == "70,058,751"


# --- estimates against real allocations -------------------------------------------------------------------------

def _close(estimate: int, actual: int, tolerance: float = 0.2) -> bool:
    return abs(estimate - actual) <= tolerance * actual


@pytest.mark.parametrize("task, overrides", [("zones", {"zones": 3}), ("zones", {"zones": 9}), ("federated", {}),
                                             ("federated", {"quality_levels": 7, "drift_levels": 5})])
def test_game_arrays_estimate(task, overrides):
    game = make_game(task, overrides)
    actual = sum(getattr(game, name).nbytes for name in GAME_ARRAYS)
    dims = game.num_global_states, game.num_global_actions, game.num_local_states, game.num_local_actions
    assert _close(budget.game_arrays_bytes(*dims), actual)


@pytest.mark.parametrize("k, L", [(1, 5), (7, 3), (30, 5), (12, 7), (200, 2)])
def test_count_vector_estimates(k, L):
    index = CountIndex(k, L)
    assert budget.count_vectors(k, L) == index.size == comb(k + L - 1, L - 1)
    assert _close(budget.count_vectors_bytes(k, L), index.all_vectors().nbytes)
    assert _close(budget.binomial_table_bytes(k, L), 2 * index._binom.nbytes)  # the table and its float sums


@pytest.fixture(scope="module")
def game():
    return make_game("zones", {"n": 300})


@pytest.mark.parametrize("k, m", [(4, 8), (15, 8), (15, 3)])
def test_glearn_table_and_operator_estimates(game, k, m):
    policy = uniform_local_policy(game)
    G, B, L = game.num_global_states, game.num_global_actions, game.num_local_states
    learned = g_learn(game, policy, k, m=m, rng=np.random.default_rng(0))
    assert _close(budget.q_table_bytes(G, k, L, B), learned.q_values.nbytes)
    assert _close(budget.action_table_bytes(G, k, L), GlobalPolicy.from_q(learned.q_values, k).actions.nbytes)
    transition = SampledCountTransition(game, policy, CountIndex(k, L), m, np.random.default_rng(0))
    assert _close(budget.sampled_operator_bytes(G, k, L, m),
                  transition.next_by_position.nbytes + transition.order.nbytes + transition.position.nbytes)
    matrix = transition.matrix
    assert _close(budget.sampled_matrix_bytes(G, k, L, m),
                  matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes + transition.next_ranks.nbytes)


def test_exact_operator_estimate(game):
    k, L = 6, game.num_local_states
    matrix = ExactCountTransition(game, uniform_local_policy(game), CountIndex(k, L)).matrix
    assert _close(budget.exact_operator_bytes(game.num_global_states, k, L), matrix.nbytes)


def _traced_peak(run) -> int:
    _enumerate_compositions.cache_clear()  # what a fresh process would allocate
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bounds(estimate: int, peak: int, slack: float) -> None:
    assert peak <= estimate <= slack * peak, f"estimate {estimate} vs traced peak {peak}"


def test_peak_estimates_bound_tracemalloc(game):
    G, B, L, A = game.num_global_states, game.num_global_actions, game.num_local_states, game.num_local_actions
    policy = uniform_local_policy(game)
    for k, m, method in ((20, 8, "sampled"), (40, 8, "sampled"), (20, 40, "sampled"), (8, 8, "exact")):
        def run(k=k, m=m, method=method):
            return g_learn(game, policy, k, m=m, method=method, rng=np.random.default_rng(1))

        _bounds(budget.glearn_bytes(G, B, L, k, m, method, A), _traced_peak(run), 1.5)
    _bounds(budget.all_vectors_peak_bytes(60, 5), _traced_peak(lambda: CountIndex(60, 5).all_vectors()), 1.5)
    _bounds(zones.build_bytes(40), _traced_peak(lambda: make_game("zones", {"zones": 40})), 1.5)
    wide = config_from_mapping(federated.FederatedConfig, {"quality_levels": 40, "drift_levels": 30})
    _bounds(federated.build_bytes(wide), _traced_peak(lambda: federated.build_game(wide)), 1.5)


def test_simulation_estimates_bound_tracemalloc():
    game = make_game("zones", {"zones": 30, "n": 500})
    L, A = game.num_local_states, game.num_local_actions
    policy, local = GlobalPolicy.constant(game, 2), uniform_local_policy(game)
    peak = _traced_peak(lambda: rollout(game, policy, local, np.random.default_rng(0), 50))
    _bounds(budget.rollout_bytes(50, game.horizon, L, A), peak, 1.5)
    peak = _traced_peak(lambda: mean_field(game, policy, local, np.random.default_rng(0), mode="stationary"))
    _bounds(budget.mean_field_bytes(200, 300, 200, L, A), peak, 2.0)
    field = mean_field(game, policy, local, np.random.default_rng(0))
    _bounds(budget.local_gap_bytes(game.num_global_states, L, A), _traced_peak(lambda: local_gap(game, field, local)),
            1.5)


@pytest.mark.parametrize("overrides, k, config", [
    ({"n": 200}, 10, AlternationConfig(rounds=3, k_ref=30, eval_seeds=2, eval_rollouts=20)),
    ({"n": 200, "zones": 12}, 3, AlternationConfig(rounds=2, k_ref=6, eval_seeds=2, eval_rollouts=20)),
])
def test_run_estimate_bounds_a_whole_alternation(overrides, k, config):
    game = make_game("zones", overrides)
    _bounds(config.memory_bytes(game, k), _traced_peak(lambda: alternate(game, k, config, seed=0)), 1.5)


# --- refused before allocating, in the library --------------------------------------------------------------------

def test_glearn_is_refused_before_it_allocates(game, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1MB")
    policy = uniform_local_policy(game)
    with pytest.raises(MemoryBudgetError, match=r"G-LEARN at k=30 \(46,376 count vectors") as caught:
        tracemalloc.start()
        try:
            g_learn(game, policy, 30, rng=np.random.default_rng(0))
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < 200_000 and "memory budget of 976.6 KiB" in str(caught.value)


def test_count_index_never_overflows():
    index = CountIndex(5, 1000)  # C(1004, 999) count vectors; the table used to hold C(1005, 500), an OverflowError
    assert index.size == comb(1004, 5)
    vector = np.zeros(1000, dtype=np.int64)
    vector[[3, 999]] = [2, 3]
    assert 0 <= int(index.rank(vector)) < index.size
    with pytest.raises(MemoryBudgetError, match=f"listing the {comb(1004, 5):,} count vectors of k=5 agents over 1000"):
        index.all_vectors()
    with pytest.raises(MemoryBudgetError, match="ranks overflow 64 bits"):
        CountIndex(10**6, 10**4)


def test_binomial_table_is_exact():
    index = CountIndex(40, 9)
    expected = np.array([[comb(n, r) for r in range(10)] for n in range(50)], dtype=np.int64)
    np.testing.assert_array_equal(index._binom, expected)


def test_other_steps_check_too(monkeypatch):
    game = make_game("zones", {"zones": 30, "n": 500})
    policy, local = GlobalPolicy.constant(game, 2), uniform_local_policy(game)
    monkeypatch.setenv(ENV_VAR, "1MB")
    with pytest.raises(MemoryBudgetError, match="50 rollouts of 50 steps"):
        rollout(game, policy, local, np.random.default_rng(0), 50)
    with pytest.raises(MemoryBudgetError, match="the mean field"):
        mean_field(game, policy, local, np.random.default_rng(0))
    env = make_env("warehouse", {"n": 10**6})
    with pytest.raises(MemoryBudgetError, match="warehouse rollouts of n=1000000"):
        env.reset(np.random.default_rng(0), 32)
    with pytest.raises(MemoryBudgetError, match="federated game with drift_levels=400"):
        make_game("federated", {"drift_levels": 400})


def test_zones_builder_is_bit_identical_to_the_meshgrid_one():
    for Z in (2, 3, 5, 8, 13):
        config = config_from_mapping(zones.ZonesConfig, {"zones": Z})
        game, reference = zones.build_game(config), _meshgrid_zones(config)
        for name, array in reference.items():
            assert getattr(game, name).tobytes() == array.tobytes(), (Z, name)


def _meshgrid_zones(config) -> dict[str, np.ndarray]:
    """zones.build_game as it was before the budget (full index grids), for the bit-identity check."""
    def softmax(logits):
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    Z, zone = config.zones, np.arange(config.zones)
    s, a, nxt = np.meshgrid(zone, zone, zone, indexing="ij")
    global_transition = softmax((config.global_target_logit * (nxt == a)
                                 + config.global_stay_logit * (nxt == s)).astype(float))
    s, g, act, nxt = np.meshgrid(zone, zone, np.arange(3), zone, indexing="ij")
    local_transition = softmax((config.local_stay_logit * (nxt == s)
                                + config.local_move_logit * ((act == 1) & (nxt == (s + 1) % Z))
                                + config.local_move_logit * ((act == 2) & (nxt == (s - 1) % Z))
                                + config.local_attract_logit * (nxt == g)).astype(float))
    s, g, act = np.meshgrid(zone, zone, np.arange(3), indexing="ij")
    distance = zones.circular_distance(s, g, Z)
    base = np.where(distance == 0, config.reward_at_dispatcher, config.reward_distance_scale / (1.0 + distance))
    return {"global_transition": global_transition, "local_transition": local_transition,
            "local_reward": base + np.asarray(config.action_bonus)[act]}


# --- default-size runs are not refused ---------------------------------------------------------------------------

@pytest.mark.skipif(budget.memory_limit()[0] < 4 * 2**30, reason="needs 4 GiB of memory for a 2 GiB budget")
def test_default_runs_fit_the_default_budget():
    for task, k in (("zones", 5), ("zones", 3), ("federated", 5)):
        game = make_game(task)
        config = AlternationConfig()  # the default certificate: k_ref = min(n, 60)
        assert config.reference_k(game) == 60
        config.validate(game, k)
        assert config.memory_bytes(game, k) < 2 * 2**30


@pytest.mark.skipif(budget.memory_limit()[0] < 4 * 2**30, reason="needs 4 GiB of memory for a 2 GiB budget")
def test_default_certificate_trains_under_the_default_budget(tmp_path):
    """`altmarl train --task zones --k 5` with the default certificate (k_ref = 60), one short round."""
    out = tmp_path / "run"
    result = _altmarl(["train", "--task", "zones", "--k", "5", "--rounds", "1", "--eval-seeds", "2",
                       "--eval-rollouts", "5", "--out", str(out), "-q"], address_space=None)
    assert result.returncode == 0, result.stderr
    assert (out / "checkpoint.npz").is_file()
    estimate = AlternationConfig(rounds=1, eval_seeds=2, eval_rollouts=5).memory_bytes(make_game("zones"), 5)
    assert _peak_rss(result) < estimate + KERNEL_RUN_OVERHEAD  # the arrays' estimate, plus the interpreter


# --- the issue's cases, as commands under a hard memory limit ------------------------------------------------------

def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


# the child's own peak: VmHWM of its address space. Not getrusage's ru_maxrss, which Linux keeps across
# execve: a child forked (preexec_fn) from a large pytest process would report the parent's size.
CHILD = textwrap.dedent("""
    import re, sys
    try:
        {body}
    finally:
        with open("/proc/self/status") as status:
            peak = re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)
        print(f"PEAK_RSS_KB={{peak}}", file=sys.stderr)
    sys.exit(rc)
""")
CLI = "from altmarl_ros.cli import main; rc = main(sys.argv[1:])"


def _altmarl(argv: list[str], env: dict[str, str] | None = None, body: str = CLI,
             address_space: int | None = CHILD_ADDRESS_SPACE) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run([sys.executable, "-c", CHILD.format(body=body), *argv], capture_output=True, text=True,
                          env=_child_env(env), preexec_fn=limit if address_space else None, timeout=600)


def _peak_rss(result: subprocess.CompletedProcess) -> int:
    return int(re.search(r"PEAK_RSS_KB=(\d+)", result.stderr).group(1)) * 1024


def _refused(result: subprocess.CompletedProcess, *needles: str, built: int = 0) -> str:
    """Exit code 2, the CLI's one-line error with the estimate and the budget, a small peak RSS (plus what was
    `built` before the refusal: a game that fits is built before the run is estimated)."""
    assert result.returncode == 2, result.stderr
    error = result.stderr.splitlines()[0]
    assert re.match(r"altmarl (train|eval): error: ", error), error
    assert re.search(r" needs about ([\d.]+ [KMGTPEZY]iB|2\^\d+ B)", error), error
    assert re.search(r"more than the memory budget of [\d.]+ [KMG]iB", error), error
    assert f"{ENV_VAR}=SIZE" in error and "--memory-budget SIZE" in error
    for needle in needles:
        assert needle in error, error
    assert "MemoryError" not in result.stderr and "Traceback" not in result.stderr
    assert _peak_rss(result) < CHILD_PEAK_RSS + built
    return error


ISSUE_BUDGET = {ENV_VAR: "12GiB"}  # the issue's 24 GB machine at the default 50 %, whatever this one has


def test_train_k200_is_refused(tmp_path):
    result = _altmarl(["train", "--k", "200", "--out", str(tmp_path / "x"), "-q"], ISSUE_BUDGET)
    error = _refused(result, "training with k=200 on zones", "G-LEARN at k=200 over 70,058,751 count vectors",
                     "memory budget of 12.0 GiB (set by ALTMARL_MEMORY_BUDGET=12GiB)", "k <= 126 fits")
    assert not (tmp_path / "x").exists()
    assert "needs about 72.6 GiB" in error


def test_zones_1000_is_refused_by_the_game_builder(tmp_path):
    result = _altmarl(["train", "--k", "5", "--set", "zones=1000", "--out", str(tmp_path / "x"), "-q"])
    _refused(result, "the zones game with zones=1000", "P_l has 1000x1000x3x1000 entries: 22.4 GiB",
             "needs about 32.8 GiB", "the address-space limit (RLIMIT_AS", "reduce zones")


def test_zones_200_is_refused_before_glearn(tmp_path):
    result = _altmarl(["train", "--k", "5", "--set", "zones=200", "--out", str(tmp_path / "x"), "-q"], ISSUE_BUDGET)
    game = zones.build_bytes(200)  # 260 MB: it fits, so it is built; the run is refused before G-LEARN
    _refused(result, "training with k=5 on zones (n=1000, 200 local states",
             "k <= 1 fits without the certificate (--no-certify)", built=game)
    result = _altmarl(["train", "--k", "5", "--set", "zones=200", "--no-certify", "--out", str(tmp_path / "x"),
                       "-q"], ISSUE_BUDGET)
    _refused(result, "G-LEARN at k=5 over 2,802,350,040 count vectors", "k <= 1 fits", built=game)


def test_default_reference_shrinks_with_the_number_of_zones():
    """k_ref defaults to the largest k <= min(n, 60) with at most 2^20 count vectors: 60 on 5 zones, 26 on 7."""
    assert AlternationConfig().reference_k(make_game("zones")) == 60
    assert AlternationConfig().reference_k(make_game("zones", {"zones": 7})) == 26
    assert AlternationConfig().reference_k(make_game("zones", {"n": 40})) == 40
    assert AlternationConfig(k_ref=12).reference_k(make_game("zones", {"zones": 7})) == 12


def test_readme_zones_7_with_k_ref_60_is_refused_with_what_fits(tmp_path):
    """`--set zones=7 --k-ref 60` (90,858,768 count vectors): refused, naming the k_ref that fits."""
    result = _altmarl(["train", "--k", "5", "--set", "zones=7", "--k-ref", "60", "--out", str(tmp_path / "x"), "-q"],
                      ISSUE_BUDGET)
    _refused(result, "the certificate's reference G-LEARN at k_ref=60 over 90,858,768 count vectors",
             "k_ref <= 43 fits with k=5 (--k-ref 43)", "k=5 fits without the certificate (--no-certify)")
    assert AlternationConfig(k_ref=43).memory_bytes(make_game("zones", {"zones": 7}), 5) <= 12 * 2**30
    assert AlternationConfig(k_ref=44).memory_bytes(make_game("zones", {"zones": 7}), 5) > 12 * 2**30


@pytest.fixture(scope="module")
def zones_1000_checkpoint(tiny_run, tmp_path_factory) -> Path:
    """A few-KB checkpoint of a zones run whose metadata says zones: 1000 (written by the project's save)."""
    checkpoint = load_checkpoint(tiny_run(2))
    meta = dict(checkpoint.meta)
    meta["task_overrides"] = {**meta.get("task_overrides", {}), "zones": 1000}
    meta["task_config"] = {**meta["task_config"], "zones": 1000}
    path = save_checkpoint(tmp_path_factory.mktemp("zones1000") / "checkpoint.npz", checkpoint.arrays, meta)
    assert path.stat().st_size < 16_000
    return path


def test_eval_refuses_a_checkpoint_whose_metadata_says_zones_1000(zones_1000_checkpoint):
    result = _altmarl(["eval", str(zones_1000_checkpoint.parent)])
    _refused(result, f"{zones_1000_checkpoint}: the zones game with zones=1000",
             "needs about 32.8 GiB")


@pytest.mark.parametrize("loader", [
    "from altmarl_ros.runs import load",
    "from altmarl_ros import runs\n"
    "    load = lambda path: runs.load(path, expect_task='zones')",  # what every node does
])
def test_node_loaders_refuse_it_with_bounded_memory(zones_1000_checkpoint, loader):
    body = (f"{loader}\n"
            "    try:\n"
            "        load(sys.argv[1])\n"
            "        rc = 0\n"
            "    except Exception as exc:\n"
            "        print(type(exc).__name__, type(exc.__cause__).__name__, exc, file=sys.stderr)\n"
            "        rc = 2")
    result = _altmarl([str(zones_1000_checkpoint)], body=body)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("MemoryBudgetError MemoryBudgetError "), result.stderr
    assert "the zones game with zones=1000" in result.stderr and "needs about 32.8 GiB" in result.stderr
    assert _peak_rss(result) < CHILD_PEAK_RSS


def test_in_process_loader_chain(zones_1000_checkpoint):
    with pytest.raises(MemoryBudgetError, match="zones game with zones=1000") as caught:  # as it is, file named
        runs.load(zones_1000_checkpoint)
    assert str(zones_1000_checkpoint) in str(caught.value) and caught.value.estimate > caught.value.budget
