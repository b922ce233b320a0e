"""`altmarl render`: a recording's RViz markers drawn top-down to a PNG (matplotlib is imported when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from altmarl_ros.marl.errors import AltmarlError


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `render` subparser, its handler cmd_render."""
    p = sub.add_parser("render", parents=[common], help="draw a recording's RViz markers to a PNG",
                       description="Replay the /altmarl/markers stream of an MCAP recording as RViz's MarkerArray "
                       "display does and draw it top-down in the world frame (zones, robots, leader, sampled "
                       "robots, status text), as the TopDownOrtho view of config/altmarl.rviz shows it.")
    p.add_argument("recording", type=Path, help="the --record directory of altmarl sim, or its run.mcap")
    p.add_argument("--png", type=Path, required=True, help="the PNG to write")
    p.add_argument("--time", type=float, help="markers' clock in seconds (simulated seconds for altmarl sim); "
                   "default: the end, the latest marker of each (ns, id)")
    p.add_argument("--size", type=int, default=800, help="width and height of the PNG in pixels (default 800)")
    p.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    """Draw the markers at --time (default: the end) and say what was drawn."""
    from altmarl_ros.viz_render import render_markers_png

    if args.size < 100:
        raise AltmarlError(f"--size must be at least 100 pixels, got {args.size}")
    picture = render_markers_png(args.recording, args.png, time=args.time, size=(args.size, args.size))
    step = "" if picture.step is None else f", decision step {picture.step}"
    drawn = ", ".join(f"{ns} {count}" for ns, count in sorted(picture.namespaces.items()))
    print(f"wrote {picture.path}: markers at t = {picture.time:.2f} s{step} ({drawn})")
    return 0
