"""Top-down pictures of a swarm episode, rendered headless (matplotlib Agg).

* `render_png`: one frame — zones, robots coloured by the zone they are in, the
  leader and its target zone, the k robots sampled at that step ringed.
* `render_gif`: an animation of the recorded frames (Pillow writer, no ffmpeg).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from altmarl_ros.sim.config import WorldConfig, zone_centres, zone_of
from altmarl_ros.sim.episode import Frame


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw(ax, config: WorldConfig, frame: Frame, title: str) -> None:
    from matplotlib.patches import Circle, Rectangle

    plt = _figure()
    colours = plt.get_cmap("tab10")(np.arange(config.zones) % 10)
    ax.clear()
    half = config.arena_half_size
    ax.add_patch(Rectangle((-half, -half), 2 * half, 2 * half, fill=False, lw=2, ec="0.3"))
    for z, centre in enumerate(zone_centres(config)):
        target = z == frame.leader_target
        ax.add_patch(Circle(centre, config.zone_radius, color=colours[z], alpha=0.12))
        ax.add_patch(Circle(centre, config.zone_radius, fill=False, ec=colours[z], lw=3 if target else 1,
                            ls="-" if target else "--"))
        ax.text(*(centre * (1 + (config.zone_radius + 0.25) / config.ring_radius)), f"zone {z}",
                ha="center", va="center", fontsize=9, color=colours[z])
    robots = frame.poses[1:]
    zones = zone_of(config, robots[:, :2])
    ax.scatter(robots[:, 0], robots[:, 1], s=18, c=colours[zones], edgecolors="none", zorder=3)
    heading = 0.12 * np.stack([np.cos(robots[:, 2]), np.sin(robots[:, 2])], axis=1)
    ax.quiver(robots[:, 0], robots[:, 1], heading[:, 0], heading[:, 1], angles="xy", scale_units="xy", scale=1,
              width=0.002, color="0.2", zorder=3)
    sampled = robots[frame.sampled]
    ax.scatter(sampled[:, 0], sampled[:, 1], s=110, facecolors="none", edgecolors="black", linewidths=1.5,
               zorder=4, label=f"sampled this step (k={len(frame.sampled)})")
    leader = frame.poses[0]
    ax.scatter([leader[0]], [leader[1]], s=260, marker="*", c="crimson", edgecolors="black", zorder=5,
               label="leader (dispatcher)")
    ax.set_xlim(-half - 0.2, half + 0.2)
    ax.set_ylim(-half - 0.2, half + 0.2)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)


def render_png(config: WorldConfig, frame: Frame, path: str | Path, title: str = "") -> Path:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    _draw(ax, config, frame, title or f"step {frame.step}, t = {frame.time:.1f} s, "
          f"leader target zone {frame.leader_target}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def render_gif(config: WorldConfig, frames: list[Frame], path: str | Path, fps: int = 8,
               max_frames: int = 240) -> Path:
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = _figure()
    if not frames:
        raise ValueError("no frames to animate: run the episode with record_every > 0")
    stride = max(1, int(np.ceil(len(frames) / max_frames)))
    chosen = frames[::stride]
    fig, ax = plt.subplots(figsize=(5, 5))

    def update(i: int):
        f = chosen[i]
        _draw(ax, config, f, f"step {f.step}, t = {f.time:.1f} s")
        return []

    animation = FuncAnimation(fig, update, frames=len(chosen), blit=False)
    animation.save(str(path), writer=PillowWriter(fps=fps), dpi=70)
    plt.close(fig)
    return Path(path)
