"""Pictures of what RViz shows, made from a recording's MarkerArray messages (headless, matplotlib Agg).

`render_markers_png` replays the `/altmarl/markers` stream of an MCAP recording the way RViz's MarkerArray
display does (ADD replaces the marker with the same (ns, id), DELETE removes it, DELETEALL clears a namespace
or everything, lifetimes expire) up to a time, and draws the result top-down in the fixed frame `world`, as
the TopDownOrtho view of `config/altmarl.rviz` would: discs for spheres and cylinders with their scale and
colour, boxes, lines, arrows, triangles and text. It shows what a run published, not what the simulator
knew, so a marker bug is visible in the picture too.

Decoding uses rclpy's deserializer where the message packages are installed (the `ros` extra or any ROS 2
install), otherwise mcap_ros2's decoder built from the schema in the file (`pip install mcap-ros2-support`).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from altmarl_ros.recording import RecordingError, _mcap_path
from altmarl_ros.viz_contract import (
    ADD,
    ARROW,
    CUBE,
    CUBE_LIST,
    CYLINDER,
    DELETE,
    DELETEALL,
    LINE_LIST,
    LINE_STRIP,
    MARKER_TYPES,
    MESH_RESOURCE,
    POINTS,
    SPHERE,
    SPHERE_LIST,
    TEXT_VIEW_FACING,
    TRIANGLE_LIST,
)

MARKERS_TOPIC = "/altmarl/markers"
RVIZ_BACKGROUND = (48 / 255, 48 / 255, 48 / 255)  # config/altmarl.rviz: Background Color: 48; 48; 48
_STEP = re.compile(r"\bstep (\d+)")


# ---------------------------------------------------------------------------------------------- reading

def _rclpy_decoder(type_name: str):
    """A function bytes -> message from rclpy, or None where rclpy or the message package is missing."""
    try:
        from rclpy.serialization import deserialize_message

        package, _, name = type_name.split("/")
        cls = getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return lambda data: deserialize_message(data, cls)


def read_topic(path: str | Path, topic: str) -> list[tuple[int, Any]]:
    """(log time in ns, decoded message) of every message on `topic` of an MCAP file or bag directory,
    in log-time order. RecordingError when the file is unreadable or has no such topic."""
    try:
        from mcap.reader import make_reader
    except ImportError as exc:
        raise RecordingError(f"reading recordings needs the mcap package (pip install mcap): {exc}") from exc
    path = _mcap_path(path)
    decoders: dict[int, Any] = {}
    out: list[tuple[int, Any]] = []
    try:
        with open(path, "rb") as handle:
            reader = make_reader(handle)
            summary = reader.get_summary()
            if summary is None:
                raise RecordingError(f"{path} has no summary section: truncated (the recorder did not close it)")
            if topic not in {c.topic for c in summary.channels.values()}:
                topics = sorted({c.topic for c in summary.channels.values()})
                raise RecordingError(f"{path} has no topic {topic}; it has {topics}")
            for schema, _channel, message in reader.iter_messages(topics=[topic], log_time_order=True):
                if schema.id not in decoders:
                    decoders[schema.id] = _rclpy_decoder(schema.name) or _mcap_ros2_decoder(schema)
                out.append((message.log_time, decoders[schema.id](message.data)))
    except RecordingError:
        raise
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc}") from exc
    except Exception as exc:  # any parse failure of an untrusted file means corrupt
        raise RecordingError(f"{path} is not a readable MCAP file: {type(exc).__name__}: {exc}") from exc
    return out


def _mcap_ros2_decoder(schema: Any):
    try:
        from mcap_ros2.decoder import DecoderFactory
    except ImportError as exc:
        raise RecordingError(f"decoding {schema.name} needs rclpy with its message package, or mcap_ros2 "
                             f"(pip install mcap-ros2-support): {exc}") from exc
    return DecoderFactory().decoder_for("cdr", schema)


# ---------------------------------------------------------------------------------------------- replay

def stamp_seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class MarkerScene:
    """The markers RViz would show at `time` (seconds, the markers' clock), keyed by (ns, id)."""

    markers: dict[tuple[str, int], Any] = field(default_factory=dict)
    time: float = math.nan

    def by_namespace(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ns, _ in self.markers:
            counts[ns] = counts.get(ns, 0) + 1
        return counts

    @property
    def step(self) -> int | None:
        """The decision step in the newest text marker that names one (the coordinator's status line)."""
        for marker in sorted(self.markers.values(), key=lambda m: stamp_seconds(m.header.stamp), reverse=True):
            match = _STEP.search(marker.text or "") if marker.type == TEXT_VIEW_FACING else None
            if match:
                return int(match.group(1))
        return None


def replay_markers(arrays: Iterable[Any], time: float | None = None) -> MarkerScene:
    """Apply MarkerArrays in order as RViz does, skipping markers stamped after `time` (None: all)."""
    scene = MarkerScene()
    latest = -math.inf
    for array in arrays:
        for marker in array.markers:
            stamp = stamp_seconds(marker.header.stamp)
            if time is not None and stamp > time + 1e-9:
                continue
            latest = max(latest, stamp)
            key = (marker.ns, int(marker.id))
            if marker.action == ADD:
                scene.markers[key] = marker
            elif marker.action == DELETE:
                scene.markers.pop(key, None)
            elif marker.action == DELETEALL:
                scene.markers = {k: m for k, m in scene.markers.items() if marker.ns and k[0] != marker.ns}
    scene.time = latest if time is None else time
    alive = {}
    for key, marker in scene.markers.items():  # a marker with a lifetime is gone once it has passed
        life = marker.lifetime.sec + marker.lifetime.nanosec * 1e-9
        if life <= 1e-4 or stamp_seconds(marker.header.stamp) + life >= scene.time:
            alive[key] = marker
    scene.markers = alive
    return scene


# ---------------------------------------------------------------------------------------------- drawing

def _yaw(q: Any) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def _rgba(c: Any) -> tuple[float, float, float, float]:
    return tuple(min(max(float(v), 0.0), 1.0) for v in (c.r, c.g, c.b, c.a))


def _points_xy(marker: Any) -> list[tuple[float, float]]:
    """Points in the marker's frame moved by its pose (top-down: x, y after the yaw)."""
    p, yaw = marker.pose.position, _yaw(marker.pose.orientation)
    c, s = math.cos(yaw), math.sin(yaw)
    return [(p.x + c * q.x - s * q.y, p.y + s * q.x + c * q.y) for q in marker.points]


def _colours(marker: Any) -> list[tuple[float, float, float, float]]:
    if len(marker.colors) and len(marker.colors) == len(marker.points):
        return [_rgba(c) for c in marker.colors]
    return [_rgba(marker.color)] * len(marker.points)


def _height(marker: Any) -> float:
    """Draw order: what is higher in z is drawn later (on top), as seen from above."""
    z = marker.pose.position.z
    if len(marker.points):
        z += sum(q.z for q in marker.points) / len(marker.points)
    return z


def _extent(marker: Any) -> list[tuple[float, float]]:
    p, half = marker.pose.position, 0.5 * max(marker.scale.x, marker.scale.y, 0.0)
    if len(marker.points):
        return [(x + dx, y + dy) for x, y in _points_xy(marker) for dx, dy in ((-half, -half), (half, half))]
    if marker.type == TEXT_VIEW_FACING:
        return [(p.x, p.y)]
    return [(p.x - half, p.y - half), (p.x + half, p.y + half)]


def _draw_marker(ax, marker: Any, points_per_metre: float) -> tuple[float, float, float, float] | None:
    """Draw one marker; returns a representative colour (for the legend)."""
    from matplotlib.collections import EllipseCollection, LineCollection, PatchCollection
    from matplotlib.patches import Ellipse, FancyArrow, Polygon, Rectangle

    p, s, kind = marker.pose.position, marker.scale, marker.type
    yaw = _yaw(marker.pose.orientation)
    colour = _rgba(marker.color)
    z = _height(marker)
    if kind in (SPHERE, CYLINDER):
        ax.add_patch(Ellipse((p.x, p.y), s.x, s.y, angle=math.degrees(yaw), fc=colour, ec="none", zorder=z))
    elif kind == CUBE:
        rect = Rectangle((p.x - s.x / 2, p.y - s.y / 2), s.x, s.y, angle=math.degrees(yaw),
                         rotation_point="center", fc=colour, ec="none", zorder=z)
        ax.add_patch(rect)
    elif kind in (SPHERE_LIST, CUBE_LIST, POINTS):
        xy, colours = _points_xy(marker), _colours(marker)
        if not xy:
            return colour
        if kind == CUBE_LIST or kind == POINTS:
            patches = [Rectangle((x - s.x / 2, y - s.y / 2), s.x, s.y) for x, y in xy]
            ax.add_collection(PatchCollection(patches, facecolors=colours, edgecolors="none", zorder=z))
        else:
            ax.add_collection(EllipseCollection([s.x] * len(xy), [s.y] * len(xy), [0.0] * len(xy), units="xy",
                                                offsets=xy, offset_transform=ax.transData, facecolors=colours,
                                                edgecolors=[(0, 0, 0, 0.5 * c[3]) for c in colours],
                                                linewidths=0.4, zorder=z))
        return colours[0]
    elif kind in (LINE_STRIP, LINE_LIST):
        xy, colours = _points_xy(marker), _colours(marker)
        segments = list(zip(xy[:-1], xy[1:], strict=True)) if kind == LINE_STRIP else \
            [(xy[i], xy[i + 1]) for i in range(0, len(xy) - 1, 2)]
        starts = colours[: len(segments)] if kind == LINE_STRIP else colours[::2][: len(segments)]
        ax.add_collection(LineCollection(segments, colors=starts or [colour],
                                         linewidths=max(s.x * points_per_metre, 0.3), zorder=z))
    elif kind == ARROW:
        if len(marker.points) == 2:
            (x0, y0), (x1, y1) = _points_xy(marker)
            width, head = s.x, s.y
        else:
            x0, y0 = p.x, p.y
            x1, y1 = p.x + s.x * math.cos(yaw), p.y + s.x * math.sin(yaw)
            width, head = s.y, 2 * s.y
        ax.add_patch(FancyArrow(x0, y0, x1 - x0, y1 - y0, width=width, head_width=head,
                                length_includes_head=True, fc=colour, ec="none", zorder=z))
    elif kind == TRIANGLE_LIST:
        xy, colours = _points_xy(marker), _colours(marker)
        for i in range(0, len(xy) - 2, 3):
            ax.add_patch(Polygon(xy[i:i + 3], closed=True, fc=colours[i], ec="none", zorder=z))
    elif kind == TEXT_VIEW_FACING:
        ax.text(p.x, p.y, marker.text, ha="center", va="center", color=colour,
                fontsize=max(s.z * points_per_metre, 4.0), zorder=z + 100)
    elif kind == MESH_RESOURCE:  # a mesh cannot be drawn here: its footprint box, outlined
        ax.add_patch(Rectangle((p.x - s.x / 2, p.y - s.y / 2), s.x, s.y, angle=math.degrees(yaw),
                               rotation_point="center", fill=False, ec=colour, zorder=z))
    return colour


@dataclass
class MarkerPicture:
    """A written picture: what it shows (time, step, markers per namespace) and where the world is in it."""

    path: Path
    time: float
    step: int | None
    namespaces: dict[str, int]
    size: tuple[int, int]
    world_to_pixel: tuple[float, float, float, float]  # column = a * x + b, row = c * y + d

    def pixel(self, x: float, y: float) -> tuple[int, int]:
        """(row, column) of the PNG pixel that shows the world point (x, y)."""
        a, b, c, d = self.world_to_pixel
        return int(c * y + d), int(a * x + b)


def render_scene(scene: MarkerScene, out_png: str | Path, title: str = "", size: tuple[int, int] = (800, 800),
                 dpi: int = 100, background: tuple[float, float, float] = RVIZ_BACKGROUND) -> MarkerPicture:
    """Draw a replayed marker scene top-down in its frame, axes in metres, `size` pixels exactly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not scene.markers:
        raise RecordingError("no markers to draw at this time")
    markers = sorted(scene.markers.values(), key=_height)
    corners = [xy for m in markers for xy in _extent(m)]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    centre = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    half = 0.55 * max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    fig = plt.figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    ax = fig.add_axes((0.09, 0.07, 0.88, 0.86))
    ax.set_facecolor(background)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal", adjustable="box")
    from matplotlib.ticker import MultipleLocator

    ax.xaxis.set_minor_locator(MultipleLocator(1.0))
    ax.yaxis.set_minor_locator(MultipleLocator(1.0))
    ax.grid(True, which="both", color=(1, 1, 1, 0.12), lw=0.6)  # the .rviz Grid display: 1 m cells
    ax.set_axisbelow(True)
    fig.canvas.draw()  # the axes box is final now, so metres convert to points
    box = ax.get_window_extent()
    points_per_metre = min(box.width, box.height) / (2 * half) * 72.0 / dpi
    legend: dict[str, tuple[tuple[float, float, float, float], str, int]] = {}
    for marker in markers:
        colour = _draw_marker(ax, marker, points_per_metre)
        entry = legend.get(marker.ns)
        legend[marker.ns] = (entry[0] if entry else colour, MARKER_TYPES.get(marker.type, str(marker.type)),
                             (entry[2] if entry else 0) + max(1, len(marker.points)))
    handles = [Line2D([], [], ls="none", marker="o", ms=8, mfc=(c[0], c[1], c[2], max(c[3], 0.5)), mec="0.6",
                      label=f"{ns}: {kind} x{count}") for ns, (c, kind, count) in sorted(legend.items())]
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.85, title="ns: type x items",
              title_fontsize=7)
    frame = markers[0].header.frame_id
    ax.set_xlabel(f"x [m] (frame {frame})")
    ax.set_ylabel("y [m]")
    ax.set_title(title, fontsize=10)
    (x0, y0), (x1, y1) = ax.transData.transform([(0.0, 0.0), (1.0, 1.0)])  # display: pixels from bottom left
    height = fig.canvas.get_width_height()[1]
    mapping = (x1 - x0, x0, -(y1 - y0), height - y0)
    fig.savefig(out_png, dpi=dpi)
    plt.close(fig)
    return MarkerPicture(Path(out_png), scene.time, scene.step, scene.by_namespace(), size, mapping)


def render_markers_png(mcap_dir_or_file: str | Path, out_png: str | Path, time: float | None = None,
                       topic: str = MARKERS_TOPIC, size: tuple[int, int] = (800, 800)) -> MarkerPicture:
    """Render the markers of a recording as RViz shows them at `time` (the markers' clock in seconds; for
    `altmarl sim` that is simulated seconds since the start; None: the end, the latest marker of each
    (ns, id)) to a PNG of `size` pixels. RecordingError when there is nothing to draw."""
    arrays = [msg for _, msg in read_topic(mcap_dir_or_file, topic)]
    if not arrays:
        raise RecordingError(f"{mcap_dir_or_file} has no messages on {topic}")
    scene = replay_markers(arrays, time)
    if not scene.markers:
        stamps = [stamp_seconds(m.header.stamp) for a in arrays for m in a.markers]
        raise RecordingError(f"no markers stamped at or before t = {time} s; the recording's markers span "
                             f"{min(stamps):.2f} .. {max(stamps):.2f} s")
    step = scene.step
    title = f"{Path(mcap_dir_or_file).name}: {topic} at t = {scene.time:.1f} s" + \
        (f", decision step {step}" if step is not None else "")
    return render_scene(scene, out_png, title, size=size)
