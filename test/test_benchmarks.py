"""Every benchmark runs end to end on a tiny case: exit code 0, its tables printed, its JSON written.

The numbers are not checked here (they depend on the machine); the benchmarks' own README says what they
measured. These cases only keep the scripts from rotting between the runs that produce those numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _json(path: Path) -> dict:
    data = json.loads(path.read_text())
    assert isinstance(data, dict) and data
    return data


def test_glearn_scaling(tmp_path):
    result = _run("glearn_scaling.py", "--k", "5", "--json", str(tmp_path / "g.json"))
    assert "k=50" not in result.stdout.split("Sampled G-LEARN scaling")[0]  # only the k asked for ran
    assert "count vectors" in result.stdout
    _json(tmp_path / "g.json")


def test_eval_protocol(tmp_path):
    result = _run("eval_protocol.py", "--n", "1e3", "--policy", "constant", "--seeds", "2", "--rollouts", "2",
                  "--json", str(tmp_path / "e.json"))
    assert "1000" in result.stdout or "1,000" in result.stdout
    _json(tmp_path / "e.json")


def test_world_step_rate_both_backends(tmp_path):
    pytest.importorskip("pybullet")
    result = _run("world_step_rate.py", "--n", "5", "--backend", "kinematic", "pybullet", "--seconds", "0.5",
                  "--json", str(tmp_path / "w.json"))
    assert "kinematic" in result.stdout and "pybullet" in result.stdout
    _json(tmp_path / "w.json")


def test_raw_pybullet():
    pytest.importorskip("pybullet")
    result = _run("raw_pybullet.py", "--n", "3", "--seconds", "0.2")
    assert result.stdout.strip()


def test_deep_training_on_its_quickest_case(tmp_path):
    result = _run("deep_training.py", "--cases", "federated:5:tabular", "--json", str(tmp_path / "d.json"))
    assert "federated" in result.stdout
    _json(tmp_path / "d.json")


def test_fault_injection_one_input_case(tmp_path):
    result = _run("fault_injection.py", "--quick", "--only", r"^train --k 0$", "--work-dir", str(tmp_path / "w"),
                  "--json", str(tmp_path / "f.json"))
    assert "train --k 0" in result.stdout
    rows = json.loads((tmp_path / "f.json").read_text())
    assert rows


def test_ros_graph_on_ten_robots(tmp_path):
    pytest.importorskip("rclpy")
    result = _run("ros_graph.py", "--n", "10", "--link", "batched", "--steps", "2", "--speedup", "2",
                  "--transport-n", "0", "--json", str(tmp_path / "r.json"))
    assert "Messages per decision step at the coordinator" in result.stdout
    _json(tmp_path / "r.json")
