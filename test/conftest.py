"""Fixtures shared by the test files: tiny trained zones runs and the fast world the graph tests use."""

from __future__ import annotations

from pathlib import Path

import pytest

# Markers (`setup.cfg` registers them); `.ci/run` runs everything. `graph` (and `slow`): every test of these
# modules starts ROS 2 processes or a node graph. Slow tests of other modules are not marked yet.
GRAPH_MODULES = {"test_ros_graph", "test_mixed_distros", "test_netns_hosts", "test_ros2_launch", "test_security",
                 "test_recorder"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in GRAPH_MODULES:
            item.add_marker(pytest.mark.graph)
            item.add_marker(pytest.mark.slow)


# a small arena with 6 s decisions: graph tests take a step every 1.5 s of wall time at speedup 4
FAST_WORLD = "world:\n  zone_radius: 1.3\n  ring_radius: 2.35\n  arena_half_size: 4.2\n  decision_period: 6.0\n"


def train_tiny_zones(out: Path, k: int) -> Path:
    """One alternation round on zones from the paper's start, no certificate, saved as a run in `out` (+ world.yaml)."""
    from altmarl_ros.marl.alternation import AlternationConfig, alternate
    from altmarl_ros.tasks import make_game
    from altmarl_ros.training import save_result

    result = alternate(make_game("zones"), k, AlternationConfig(rounds=1, certify=False, eval_seeds=1,
                                                                eval_rollouts=2, starts=("uniform",)), seed=0)
    save_result(result, out, "zones", {})
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
