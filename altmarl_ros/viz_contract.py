"""What RViz 2 needs from this package's markers and its `.rviz` config, as pure checks.

RViz draws nothing, or shows a status warning, when a marker breaks one of its rules; nothing in the
publishing node fails. These functions state those rules so tests (and anyone debugging a blank RViz) can
check recorded markers and the shipped config without RViz. Every function returns a list of problems
(empty = fine) instead of raising, so one run reports every violation at once.

Messages are duck-typed (attribute access only), so rclpy messages, mcap_ros2 and rosbags decodings all
work. The rules and names come from rviz2's sources, Humble through Rolling:

* display / tool / view classes: `rviz_default_plugins/plugins_description.xml` (the class names are the
  same on Humble, Jazzy and Rolling; Jazzy added CameraInfo) and the panels of `rviz_common/default.rviz`;
* QoS names: `rviz_common/src/rviz_common/properties/qos_profile_property.cpp`;
* marker types: `markers/marker_factory.cpp` (types 0..11; ARROW_STRIP = 12 exists only on Rolling);
* finite numbers: `marker_common.cpp` validateFloats (pose, scale, color, points), DELETEALL by namespace;
  duplicates: `MarkerCommon::addMessage` ("Multiple Markers in the same MarkerArray message had the same ns
  and id");
* scale: `shape_marker.cpp` warns "Scale of 0 in one of x/y/z"; lines use only scale.x, text only scale.z;
* per-point colours are used only when `len(colors) == len(points)` (`points_marker.cpp`,
  `line_marker_base.cpp`), otherwise silently ignored; "All points have a zero alpha value" warns;
* quaternions: rviz 1's marker checks warn when |q|^2 is more than 1e-2 from 1; rviz2 hands the quaternion
  through tf2 to Ogre unchecked (`frame_manager.cpp`), so a zero quaternion collapses the shape;
* frames: rviz2 strips a leading '/' (with a TODO to warn about it), tf2 rejects such names, so the
  contract asks for the exact frame name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

# visualization_msgs/Marker constants
ARROW, CUBE, SPHERE, CYLINDER, LINE_STRIP, LINE_LIST, CUBE_LIST, SPHERE_LIST, POINTS, TEXT_VIEW_FACING, \
    MESH_RESOURCE, TRIANGLE_LIST = range(12)
ADD, DELETE, DELETEALL = 0, 2, 3  # MODIFY == ADD (deprecated alias)

MARKER_TYPES = {ARROW: "ARROW", CUBE: "CUBE", SPHERE: "SPHERE", CYLINDER: "CYLINDER", LINE_STRIP: "LINE_STRIP",
                LINE_LIST: "LINE_LIST", CUBE_LIST: "CUBE_LIST", SPHERE_LIST: "SPHERE_LIST", POINTS: "POINTS",
                TEXT_VIEW_FACING: "TEXT_VIEW_FACING", MESH_RESOURCE: "MESH_RESOURCE",
                TRIANGLE_LIST: "TRIANGLE_LIST"}
ACTIONS = {ADD: "ADD", DELETE: "DELETE", DELETEALL: "DELETEALL"}

# which scale components a type uses (RViz warns on 0 or draws nothing; negative flips the geometry)
_SCALE_USED = {CUBE: "xyz", SPHERE: "xyz", CYLINDER: "xyz", LINE_STRIP: "x", LINE_LIST: "x", CUBE_LIST: "xyz",
               SPHERE_LIST: "xyz", POINTS: "xy", TEXT_VIEW_FACING: "z", MESH_RESOURCE: "xyz", TRIANGLE_LIST: "xyz"}
_POINT_TYPES = {LINE_STRIP: 2, LINE_LIST: 2, CUBE_LIST: 1, SPHERE_LIST: 1, POINTS: 1, TRIANGLE_LIST: 3}
QUATERNION_TOLERANCE = 1e-2  # on |q|^2 - 1

# rviz_default_plugins display classes -> the message types their topic takes (plugins_description.xml)
RVIZ_DISPLAYS: dict[str, tuple[str, ...]] = {
    "rviz_default_plugins/AccelStamped": ("geometry_msgs/msg/AccelStamped",),
    "rviz_default_plugins/Axes": (),
    "rviz_default_plugins/Camera": ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"),
    "rviz_default_plugins/DepthCloud": ("sensor_msgs/msg/Image",),
    "rviz_default_plugins/Effort": ("sensor_msgs/msg/JointState",),
    "rviz_default_plugins/FluidPressure": ("sensor_msgs/msg/FluidPressure",),
    "rviz_default_plugins/Grid": (),
    "rviz_default_plugins/GridCells": ("nav_msgs/msg/GridCells",),
    "rviz_default_plugins/Illuminance": ("sensor_msgs/msg/Illuminance",),
    "rviz_default_plugins/Image": ("sensor_msgs/msg/Image",),
    "rviz_default_plugins/InteractiveMarkers": ("visualization_msgs/msg/InteractiveMarkerUpdate",),
    "rviz_default_plugins/LaserScan": ("sensor_msgs/msg/LaserScan",),
    "rviz_default_plugins/Map": ("nav_msgs/msg/OccupancyGrid",),
    "rviz_default_plugins/Marker": ("visualization_msgs/msg/Marker",),
    "rviz_default_plugins/MarkerArray": ("visualization_msgs/msg/MarkerArray",),
    "rviz_default_plugins/Odometry": ("nav_msgs/msg/Odometry",),
    "rviz_default_plugins/Path": ("nav_msgs/msg/Path",),
    "rviz_default_plugins/PointCloud": ("sensor_msgs/msg/PointCloud",),
    "rviz_default_plugins/PointCloud2": ("sensor_msgs/msg/PointCloud2",),
    "rviz_default_plugins/PointStamped": ("geometry_msgs/msg/PointStamped",),
    "rviz_default_plugins/Polygon": ("geometry_msgs/msg/PolygonStamped",),
    "rviz_default_plugins/Pose": ("geometry_msgs/msg/PoseStamped",),
    "rviz_default_plugins/PoseArray": ("geometry_msgs/msg/PoseArray",),
    "rviz_default_plugins/PoseWithCovariance": ("geometry_msgs/msg/PoseWithCovarianceStamped",),
    "rviz_default_plugins/Range": ("sensor_msgs/msg/Range",),
    "rviz_default_plugins/RelativeHumidity": ("sensor_msgs/msg/RelativeHumidity",),
    "rviz_default_plugins/RobotModel": (),
    "rviz_default_plugins/TF": ("tf2_msgs/msg/TFMessage",),
    "rviz_default_plugins/Temperature": ("sensor_msgs/msg/Temperature",),
    "rviz_default_plugins/TwistStamped": ("geometry_msgs/msg/TwistStamped",),
    "rviz_default_plugins/Wrench": ("geometry_msgs/msg/WrenchStamped",),
}
RVIZ_TOOLS = frozenset({"rviz_default_plugins/MoveCamera", "rviz_default_plugins/PublishPoint",
                        "rviz_default_plugins/Select", "rviz_default_plugins/SetGoal", "rviz_default_plugins/Measure",
                        "rviz_default_plugins/FocusCamera", "rviz_default_plugins/SetInitialPose",
                        "rviz_default_plugins/Interact"})
RVIZ_VIEWS = frozenset({"rviz_default_plugins/FPS", "rviz_default_plugins/Orbit", "rviz_default_plugins/TopDownOrtho",
                        "rviz_default_plugins/XYOrbit", "rviz_default_plugins/ThirdPersonFollower"})
RVIZ_PANELS = frozenset({"rviz_common/Displays", "rviz_common/Selection", "rviz_common/Tool Properties",
                         "rviz_common/Views", "rviz_common/Time"})
QOS_VALUES = {"History Policy": ("System Default", "Keep Last", "Keep All"),
              "Reliability Policy": ("System Default", "Reliable", "Best Effort"),
              "Durability Policy": ("System Default", "Transient Local", "Volatile")}
FIXED_FRAME = "<Fixed Frame>"  # what a display's frame property holds when it follows the global fixed frame


# ---------------------------------------------------------------------------------------------- markers

def _finite(*values: float) -> bool:
    return all(math.isfinite(float(v)) for v in values)


def _name(marker: Any) -> str:
    return f"marker ({marker.ns!r}, {marker.id})"


def check_marker(marker: Any, frames: Iterable[str]) -> list[str]:
    """Problems RViz would have with one visualization_msgs/Marker, given the frames it can resolve
    (the fixed frame, and every frame on /tf)."""
    name = _name(marker)
    if marker.action not in ACTIONS:
        return [f"{name}: unknown action {marker.action} (valid: {ACTIONS})"]
    if marker.action != ADD:  # RViz deletes by (ns, id) or namespace: frame, type and geometry are unused
        return []
    problems = []
    frame = marker.header.frame_id
    if not frame:
        problems.append(f"{name}: empty header.frame_id (RViz cannot place it)")
    elif frame not in (known := set(frames)):  # '/world' is not 'world' (see the module docstring)
        problems.append(f"{name}: frame {frame!r} is neither the fixed frame nor on /tf (known: {sorted(known)})")
    if marker.type not in MARKER_TYPES:
        return problems + [f"{name}: type {marker.type} is not one RViz renders (valid: 0..11)"]
    kind = MARKER_TYPES[marker.type]
    pose, scale, color = marker.pose, marker.scale, marker.color
    p, q = pose.position, pose.orientation
    numbers = [p.x, p.y, p.z, q.x, q.y, q.z, q.w, scale.x, scale.y, scale.z, color.r, color.g, color.b, color.a]
    numbers += [v for pt in marker.points for v in (pt.x, pt.y, pt.z)]
    numbers += [v for c in marker.colors for v in (c.r, c.g, c.b, c.a)]
    if not _finite(*numbers):
        return problems + [f"{name}: NaN or infinite value in pose, scale, colour or points (RViz drops it)"]
    norm2 = q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w
    if abs(norm2 - 1.0) > QUATERNION_TOLERANCE:
        problems.append(f"{name}: orientation ({q.x}, {q.y}, {q.z}, {q.w}) is not a unit quaternion "
                        f"(|q|^2 = {norm2:.4g}); set orientation.w = 1.0 for no rotation")
    if kind == "ARROW":
        used = "xy" if len(marker.points) == 2 else "xyz"  # two points: shaft and head diameter (z: auto length)
        if len(marker.points) not in (0, 2):
            problems.append(f"{name}: ARROW takes 0 or 2 points, got {len(marker.points)}")
    else:
        used = _SCALE_USED[marker.type]
    bad = [axis for axis in used if not getattr(scale, axis) > 0]
    if bad:
        problems.append(f"{name}: {kind} needs scale.{'/'.join(bad)} > 0, got "
                        f"({scale.x}, {scale.y}, {scale.z})")
    minimum = _POINT_TYPES.get(marker.type)
    count = len(marker.points)
    if minimum is not None and count < minimum:
        problems.append(f"{name}: {kind} needs at least {minimum} points, got {count}")
    if marker.type == LINE_LIST and count % 2:
        problems.append(f"{name}: LINE_LIST needs an even number of points, got {count}")
    if marker.type == TRIANGLE_LIST and count % 3:
        problems.append(f"{name}: TRIANGLE_LIST needs a multiple of 3 points, got {count}")
    if kind == "TEXT_VIEW_FACING" and not marker.text:
        problems.append(f"{name}: TEXT_VIEW_FACING with empty text")
    if kind == "MESH_RESOURCE" and not marker.mesh_resource:
        problems.append(f"{name}: MESH_RESOURCE without mesh_resource")
    per_point = len(marker.colors) > 0 and marker.type in _POINT_TYPES
    if len(marker.colors) and len(marker.colors) != count:
        problems.append(f"{name}: {len(marker.colors)} colours for {count} points (RViz ignores them unless "
                        "the counts match)")
    colours = list(marker.colors) if per_point else [color]
    if any(not 0.0 <= v <= 1.0 for c in colours for v in (c.r, c.g, c.b, c.a)):
        problems.append(f"{name}: colour components outside [0, 1]")
    invisible = [i for i, c in enumerate(colours) if not c.a > 0]
    if invisible:
        which = f"per-point colours {invisible[:5]}" if per_point else "color"
        problems.append(f"{name}: {which} with alpha 0 (invisible)")
    if marker.lifetime.sec < 0:
        problems.append(f"{name}: negative lifetime")
    return problems


def check_marker_array(msg: Any, frames: Iterable[str]) -> list[str]:
    """Problems with one MarkerArray: each marker's, and (ns, id) pairs that occur twice in the message."""
    frames = set(frames)
    problems: list[str] = []
    seen: set[tuple[str, int]] = set()
    for marker in msg.markers:
        problems += check_marker(marker, frames)
        key = (marker.ns, int(marker.id))
        if key in seen:
            problems.append(f"{_name(marker)}: (ns, id) occurs twice in one MarkerArray (RViz: 'Multiple Markers "
                            "in the same MarkerArray message had the same ns and id')")
        seen.add(key)
    return problems


# ---------------------------------------------------------------------------------------------- .rviz config

def topic_pattern(name: str) -> re.Pattern[str]:
    """A documented topic name with placeholders (`/robot_<i>/odom`) as a regex for concrete names."""
    parts = re.split(r"<[^>]+>", name)
    return re.compile("".join(re.escape(part) + ("[A-Za-z0-9_]+" if i < len(parts) - 1 else "")
                              for i, part in enumerate(parts)) + r"\Z")


def published_type(topic: str, published: Mapping[str, str]) -> str | None:
    """The message type of a concrete topic under the documented names (which may hold placeholders)."""
    for name, type_name in published.items():
        if topic_pattern(name).match(topic):
            return type_name
    return None


def _subscriptions(display: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(topic, QoS mapping) of every topic property of a display (`Topic:` as a mapping or a string)."""
    found = []
    for key, value in display.items():
        if not key.endswith("Topic"):
            continue
        if isinstance(value, Mapping):
            found.append((str(value.get("Value", "")), value))
        else:
            found.append((str(value), {}))
    return found


def check_rviz_config(config: Mapping[str, Any], published: Mapping[str, str], fixed_frame: str) -> list[str]:
    """Problems with a parsed `.rviz` file: fixed frame, plugin classes RViz 2 ships, topics and QoS.

    `published`: topic name (placeholders allowed, e.g. `/robot_<i>/odom`) -> `pkg/msg/Type` of what the
    package publishes; every display topic must be one of them with a type the display accepts.
    """
    problems: list[str] = []
    manager = config.get("Visualization Manager")
    if not isinstance(manager, Mapping):
        return ["no 'Visualization Manager' mapping"]
    options = manager.get("Global Options") or {}
    if options.get("Fixed Frame") != fixed_frame:
        problems.append(f"Global Options / Fixed Frame is {options.get('Fixed Frame')!r}, not {fixed_frame!r}")
    for panel in config.get("Panels") or []:
        if panel.get("Class") not in RVIZ_PANELS:
            problems.append(f"panel class {panel.get('Class')!r} is not an rviz_common panel")
    for tool in manager.get("Tools") or []:
        if tool.get("Class") not in RVIZ_TOOLS:
            problems.append(f"tool class {tool.get('Class')!r} is not an rviz_default_plugins tool")
    view = ((manager.get("Views") or {}).get("Current") or {}).get("Class")
    if view is not None and view not in RVIZ_VIEWS:
        problems.append(f"view class {view!r} is not an rviz_default_plugins view controller")
    displays = manager.get("Displays") or []
    if not displays:
        problems.append("no displays")
    names = [d.get("Name") for d in displays]
    for display in displays:
        cls, label = display.get("Class"), f"display {display.get('Name')!r}"
        if names.count(display.get("Name")) > 1:
            problems.append(f"{label}: name used by more than one display")
        if cls not in RVIZ_DISPLAYS:
            problems.append(f"{label}: class {cls!r} is not an rviz_default_plugins display")
            continue
        for key in ("Reference Frame", "Target Frame", "Frame"):
            if key in display and display[key] not in (FIXED_FRAME, fixed_frame):
                problems.append(f"{label}: {key} {display[key]!r} is neither the fixed frame nor {FIXED_FRAME}")
        for topic, qos in _subscriptions(display):
            type_name = published_type(topic, published)
            if type_name is None:
                problems.append(f"{label}: topic {topic!r} is not one the package publishes")
            elif RVIZ_DISPLAYS[cls] and type_name not in RVIZ_DISPLAYS[cls]:
                problems.append(f"{label}: topic {topic} carries {type_name}, {cls} takes {RVIZ_DISPLAYS[cls]}")
            for key, valid in QOS_VALUES.items():
                if key in qos and qos[key] not in valid:
                    problems.append(f"{label}: {key} {qos[key]!r} is not one of {valid}")
            depth = qos.get("Depth")
            if depth is not None and not (isinstance(depth, int) and depth >= 1):
                problems.append(f"{label}: Depth {depth!r} is not a positive integer")
    return problems


def qos_compatible(display_qos: Mapping[str, Any], offered: Iterable[Mapping[str, int]]) -> list[str]:
    """Problems matching a display's requested QoS against publishers' offered profiles (rmw integers:
    reliability 1 reliable / 2 best effort, durability 1 transient local / 2 volatile), as DDS matches them:
    a reliable or transient-local request gets nothing from a best-effort or volatile publisher."""
    problems = []
    for profile in offered:
        if display_qos.get("Reliability Policy") == "Reliable" and profile.get("reliability") == 2:
            problems.append("display asks Reliable, a publisher offers Best Effort: they never match")
        if display_qos.get("Durability Policy") == "Transient Local" and profile.get("durability") == 2:
            problems.append("display asks Transient Local, a publisher offers Volatile: they never match")
    return problems


def display_topics(config: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Display name -> (topic, QoS mapping) for every display of a parsed `.rviz` file that subscribes."""
    out = {}
    for display in (config.get("Visualization Manager") or {}).get("Displays") or []:
        for topic, qos in _subscriptions(display):
            out[str(display.get("Name"))] = (topic, qos)
    return out
