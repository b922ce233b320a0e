"""Shared helpers for the benchmark scripts.

Every measurement runs in a fresh Python process (the benchmark script itself,
started again with a hidden ``--one CASE_JSON`` flag), so each case's peak RSS
(``ru_maxrss``) is its own and not inherited from earlier cases. The parent
process imports only the standard library.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT_MARKER = "@@BENCH_RESULT@@ "


def use_repo_package() -> None:
    """Make `altmarl_ros` importable from this checkout without PYTHONPATH."""
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def current_rss_mib() -> float:
    """Current resident set size in MiB (VmRSS), falling back to the peak where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def run_case(script: str, case: dict[str, Any]) -> dict[str, Any]:
    """Run one case of `script` in a fresh interpreter and return the dict it emitted."""
    command = [sys.executable, script, "--one", json.dumps(case)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    raise RuntimeError(f"case {case} printed no result line:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def emit_result(result: dict[str, Any]) -> None:
    """Child side of `run_case`: print the result as one marked JSON line."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def package_versions() -> dict[str, str]:
    """Versions of the numerical libraries (call in a child, after they are imported)."""
    import numpy
    import scipy

    return {"numpy": numpy.__version__, "scipy": scipy.__version__}


def machine_info() -> dict[str, Any]:
    """What the timings were taken on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain right-aligned text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, rule, *body])


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write the results file (parent directories are created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2) + "\n")
