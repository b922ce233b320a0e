"""Fixtures shared by the test files: tiny trained zones runs and the fast world the graph tests use."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

# Markers (`setup.cfg` registers them); `.ci/run` runs everything, the fast lane is `pytest -m "not slow"`.
# `graph` (and `slow`): every test of these modules starts ROS 2 processes or a node graph.
GRAPH_MODULES = {"test_ros_graph", "test_mixed_distros", "test_netns_hosts", "test_ros2_launch", "test_security",
                 "test_recorder"}

# `slow` outside the graph modules: "module::test" (no parameters, so every variant follows) taking more than
# about 5 s on the 2-core CI machine, the setup of its fixtures included (--durations charges a module fixture's
# setup to its first user). Seconds: call + setup in two runs of `-m "not graph"` on 2026-12-02 (load varied; a
# module's third figure is from a run of that module alone). Refresh with
#     python -m pytest -q -m "not graph" --durations=0 -p no:cacheprovider
# and keep the fast lane (`python -m pytest -q -m "not slow"`) under 2 minutes. Left fast on purpose, 2-6 s (10 s
# once under heavy load): test_sweep_parallel::test_two_processes_equal_the_serial_sweep,
# test_cli::test_sweep_writes_csv_and_plots, test_memory_budget::test_peak_estimates_bound_tracemalloc and
# test_sim_pybullet_world's pybullet_runs module fixture (4-7 s; so none of its users is slow).
SLOW_TESTS = {
    "test_sim_world::test_trained_policy_in_the_kinematic_world_matches_its_tabular_evaluation",  # 16, 36
    "test_sweep_parallel::test_a_local_ray_cluster_equals_the_serial_sweep",  # 10, 16
    "test_deep::test_deep_reaches_95_percent_of_tabular_on_zones",  # 9, 8
    "test_cli::test_deep_train_eval_and_sweep_on_warehouse",  # 9, 8
    "test_memory_budget::test_simulation_estimates_bound_tracemalloc",  # 8, 7, 13
    "test_memory_budget::test_default_certificate_trains_under_the_default_budget",  # (failed early), 7, 8
    "test_memory_budget::test_run_estimate_bounds_a_whole_alternation",  # both variants: 8, 7, 15
}
# "module::fixture": every user of an expensive module fixture is slow (all or none: any one of them in the fast
# lane would pay for the whole fixture). test_rviz_contract's `recording` is a graph run of 17-38 s, charged to
# its first user; the module's checker tests (no recording) stay in the fast lane.
SLOW_FIXTURES = {"test_rviz_contract::recording"}

_unimportable_modules: set[str] = set()  # test modules skipped (importorskip) or failed at collection


def _module(item) -> str:
    module = getattr(item, "module", None)
    return module.__name__.rsplit(".", 1)[-1] if module is not None else ""


def pytest_collectreport(report):
    if (report.skipped or report.failed) and report.nodeid.endswith(".py"):
        _unimportable_modules.add(Path(report.nodeid).stem)


def _whole_test_directory(config) -> bool:
    """Whether this run collected every test file: no node ids or single files, no --ignore, no --lf."""
    if config.getoption("ignore") or config.getoption("ignore_glob") or config.getoption("lf", False):
        return False
    here = Path(__file__).resolve().parent
    return all("::" not in arg and (config.invocation_params.dir / arg).resolve() in (here, here.parent)
               for arg in config.args)


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m/-k deselection: it must see the marks, and so sees all
def pytest_collection_modifyitems(config, items):
    matched = set()
    for item in items:
        module = _module(item)
        if module in GRAPH_MODULES:
            item.add_marker(pytest.mark.graph)
            item.add_marker(pytest.mark.slow)
        test = f"{module}::{getattr(item, 'originalname', item.name)}"
        fixtures = {f"{module}::{name}" for name in getattr(item, "fixturenames", ())} & SLOW_FIXTURES
        if test in SLOW_TESTS or fixtures:
            item.add_marker(pytest.mark.slow)
            matched |= {test} | fixtures
    if _whole_test_directory(config):
        for entry in sorted((SLOW_TESTS | SLOW_FIXTURES) - matched):
            if entry.split("::")[0] not in _unimportable_modules:
                warnings.warn(pytest.PytestWarning(
                    f"test/conftest.py: SLOW_TESTS/SLOW_FIXTURES entry {entry} matches no collected test "
                    "(renamed or removed?)"), stacklevel=1)


# a small arena with 6 s decisions: graph tests take a step every 1.5 s of wall time at speedup 4
FAST_WORLD = "world:\n  zone_radius: 1.3\n  ring_radius: 2.35\n  arena_half_size: 4.2\n  decision_period: 6.0\n"


def train_tiny_zones(out: Path, k: int) -> Path:
    """One alternation round on zones from the paper's start, no certificate, saved as a run in `out` (+ world.yaml)."""
    from altmarl_ros import runs
    from altmarl_ros.marl.alternation import AlternationConfig, alternate
    from altmarl_ros.tasks import make_game

    result = alternate(make_game("zones"), k, AlternationConfig(rounds=1, certify=False, eval_seeds=1,
                                                                eval_rollouts=2, starts=("uniform",)), seed=0)
    runs.save(result, out, "zones", {})
    (out / "world.yaml").write_text(FAST_WORLD)
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A factory: tiny_run(k) is a trained zones run directory for that k (one per k and test module)."""
    runs: dict[int, Path] = {}

    def make(k: int) -> Path:
        if k not in runs:
            runs[k] = train_tiny_zones(tmp_path_factory.mktemp(f"policy-k{k}"), k)
        return runs[k]

    return make
