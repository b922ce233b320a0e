"""Locate the package's URDF robot models and read their drive geometry.

`robot_urdf_path()` / `leader_urdf_path()` find `urdf/swarm_robot.urdf` and
`urdf/leader.urdf`: in a source checkout (the `urdf/` folder next to the
package), else in the ament share directory (`share/altmarl_ros/urdf`, found
with `ament_index_python` when importable, else relative to the installed
package, else under `sys.prefix`).

`parse_drive(path)` reads a differential-drive URDF with `xml.etree` (no ROS,
no PyBullet) and returns the wheel radius, the wheel separation and the
footprint radius that the backends and controllers use. The URDF must have
continuous (or revolute) joints named `left_wheel_joint` and
`right_wheel_joint` turning about the base's +y axis, the left one at +y, with
cylinder or sphere collision shapes on the wheel links, and collision shapes
that are spheres, cylinders or boxes (the footprint is computed from them and
from the visual primitives; visual meshes are skipped). Anything else is a
`WorldError` that names the file and what is wrong.
"""

from __future__ import annotations

import math
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altmarl_ros.sim.backend import WorldError

PACKAGE = "altmarl_ros"
ROBOT_URDF = "swarm_robot.urdf"
LEADER_URDF = "leader.urdf"
LEFT_WHEEL_JOINT = "left_wheel_joint"
RIGHT_WHEEL_JOINT = "right_wheel_joint"
WHEEL_JOINT_TYPES = ("continuous", "revolute")

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../altmarl_ros


@dataclass(frozen=True)
class DriveGeometry:
    """Differential-drive geometry in metres.

    wheel_radius: rolling radius of the (equal) drive wheels.
    wheel_separation: distance between the two wheels' contact centres (axle length).
    footprint_radius: radius of the smallest base-centred circle containing every
        collision and visual shape seen from above (wheels included): the robot's disc for spacing.
    """

    wheel_radius: float
    wheel_separation: float
    footprint_radius: float


# ---------------------------------------------------------------------------------------------
# Locating the files


def _candidate_dirs() -> Iterator[Path]:
    """Folders that may hold the URDFs, most specific first (looked up lazily)."""
    yield _PACKAGE_DIR.parent / "urdf"  # source checkout: <repo>/urdf next to <repo>/altmarl_ros
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        pass
    else:
        try:
            yield Path(get_package_share_directory(PACKAGE)) / "urdf"
        except (LookupError, ValueError, OSError):  # not registered, or AMENT_PREFIX_PATH unset
            pass
    # pip / colcon install: <prefix>/lib/pythonX.Y/site-packages/altmarl_ros -> <prefix>/share/altmarl_ros/urdf
    if len(_PACKAGE_DIR.parents) >= 4:
        yield _PACKAGE_DIR.parents[3] / "share" / PACKAGE / "urdf"
    yield Path(sys.prefix) / "share" / PACKAGE / "urdf"


def _find(filename: str) -> Path:
    searched: list[Path] = []
    for folder in _candidate_dirs():
        path = folder / filename
        if path.is_file():
            return path
        searched.append(folder)
    where = ", ".join(str(d) for d in searched)
    raise WorldError(f"cannot find {filename}: looked in {where} (is the package installed with its data files?)")


def robot_urdf_path() -> Path:
    """Path of the swarm robot's URDF (`swarm_robot.urdf`)."""
    return _find(ROBOT_URDF)


def leader_urdf_path() -> Path:
    """Path of the leader's URDF (`leader.urdf`)."""
    return _find(LEADER_URDF)


# ---------------------------------------------------------------------------------------------
# Reading the geometry


def _floats(path: Path, element: ET.Element, attr: str, count: int, default: str | None = None) -> np.ndarray:
    text = element.get(attr, default)
    if text is None:
        raise WorldError(f"{path}: <{element.tag}> lacks the '{attr}' attribute")
    try:
        values = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError:
        raise WorldError(f"{path}: <{element.tag} {attr}=\"{text}\"> is not {count} number(s)") from None
    if len(values) != count or not np.all(np.isfinite(values)):
        raise WorldError(f"{path}: <{element.tag} {attr}=\"{text}\"> is not {count} finite number(s)")
    return values


def _positive(path: Path, element: ET.Element, attr: str) -> float:
    value = float(_floats(path, element, attr, 1)[0])
    if value <= 0:
        raise WorldError(f"{path}: <{element.tag} {attr}=\"{value}\"> must be positive")
    return value


def _rpy_matrix(rpy: np.ndarray) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _origin(path: Path, parent: ET.Element) -> np.ndarray:
    """4x4 transform of the optional <origin> child of `parent` (identity when absent)."""
    transform = np.eye(4)
    origin = parent.find("origin")
    if origin is not None:
        transform[:3, :3] = _rpy_matrix(_floats(path, origin, "rpy", 3, "0 0 0"))
        transform[:3, 3] = _floats(path, origin, "xyz", 3, "0 0 0")
    return transform


def _load(path: Path) -> ET.Element:
    path = Path(path)
    if not path.is_file():
        raise WorldError(f"URDF file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise WorldError(f"{path} is not well-formed XML: {err}") from None
    except OSError as err:
        raise WorldError(f"cannot read URDF {path}: {err}") from None
    if root.tag != "robot":
        raise WorldError(f"{path}: root element is <{root.tag}>, expected <robot>")
    return root


def _link_transforms(path: Path, root: ET.Element) -> tuple[dict[str, np.ndarray], dict[str, ET.Element]]:
    """Each link's pose in the root link's frame (all joints at zero), and the joints by name."""
    links = {}
    for link in root.findall("link"):
        name = link.get("name")
        if not name:
            raise WorldError(f"{path}: a <link> has no name")
        links[name] = link
    if not links:
        raise WorldError(f"{path}: no <link> elements")
    joints: dict[str, ET.Element] = {}
    children: dict[str, list[tuple[str, np.ndarray]]] = {}
    child_links = set()
    for joint in root.findall("joint"):
        name = joint.get("name")
        parent, child = joint.find("parent"), joint.find("child")
        if not name or parent is None or child is None:
            raise WorldError(f"{path}: <joint name=\"{name}\"> needs a name, a <parent> and a <child>")
        parent_name, child_name = parent.get("link"), child.get("link")
        for link_name in (parent_name, child_name):
            if link_name not in links:
                raise WorldError(f"{path}: joint '{name}' refers to link '{link_name}', which is not defined")
        joints[name] = joint
        children.setdefault(parent_name, []).append((child_name, _origin(path, joint)))
        child_links.add(child_name)
    roots = [name for name in links if name not in child_links]
    if len(roots) != 1:
        raise WorldError(f"{path}: expected one root link, found {roots or 'none (a cycle)'}")
    transforms = {roots[0]: np.eye(4)}
    stack = [roots[0]]
    while stack:
        parent_name = stack.pop()
        for child_name, joint_origin in children.get(parent_name, []):
            if child_name in transforms:
                raise WorldError(f"{path}: link '{child_name}' has more than one parent joint")
            transforms[child_name] = transforms[parent_name] @ joint_origin
            stack.append(child_name)
    return transforms, links


def _shape_reach(path: Path, link_name: str, geometry: ET.Element, transform: np.ndarray) -> float:
    """Largest horizontal distance from the root origin to a point of one collision shape."""
    centre = transform[:3, 3]
    rotation = transform[:3, :3]
    sphere = geometry.find("sphere")
    cylinder = geometry.find("cylinder")
    box = geometry.find("box")
    if sphere is not None:
        return float(np.hypot(*centre[:2]) + _positive(path, sphere, "radius"))
    if cylinder is not None:
        radius, length = _positive(path, cylinder, "radius"), _positive(path, cylinder, "length")
        if abs(rotation[2, 2]) > 1.0 - 1e-9:  # upright: a disc seen from above
            return float(np.hypot(*centre[:2]) + radius)
        half = np.array([radius, radius, length / 2])  # otherwise its bounding box (exact when lying flat)
    elif box is not None:
        half = _floats(path, box, "size", 3) / 2
        if np.any(half <= 0):
            raise WorldError(f"{path}: link '{link_name}' has a <box> with a non-positive size")
    else:
        kinds = [child.tag for child in geometry]
        raise WorldError(f"{path}: link '{link_name}' has collision geometry {kinds}; only sphere, cylinder "
                         "and box are supported for the footprint")
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    corners = centre + (signs * half) @ rotation.T
    return float(np.max(np.hypot(corners[:, 0], corners[:, 1])))


def _wheel(path: Path, joints: dict[str, ET.Element], links: dict[str, ET.Element],
           transforms: dict[str, np.ndarray], joint_name: str) -> tuple[np.ndarray, float]:
    """A wheel joint's position in the root frame and the wheel's radius."""
    joint = joints.get(joint_name)
    if joint is None:
        raise WorldError(f"{path}: no joint named '{joint_name}' (joints: {sorted(joints) or 'none'}); "
                         "a differential-drive URDF needs 'left_wheel_joint' and 'right_wheel_joint'")
    if joint.get("type") not in WHEEL_JOINT_TYPES:
        raise WorldError(f"{path}: joint '{joint_name}' has type '{joint.get('type')}', "
                         f"expected one of {WHEEL_JOINT_TYPES}")
    child = joint.find("child").get("link")
    frame = transforms[child]
    axis_element = joint.find("axis")
    axis = _floats(path, axis_element, "xyz", 3) if axis_element is not None else np.array([1.0, 0.0, 0.0])
    norm = np.linalg.norm(axis)
    world_axis = frame[:3, :3] @ axis / norm if norm > 0 else axis
    if norm == 0 or not np.allclose(world_axis, [0.0, 1.0, 0.0], atol=1e-6):
        raise WorldError(f"{path}: joint '{joint_name}' turns about {np.round(world_axis, 6).tolist()} in the "
                         "base frame; wheel joints must turn about +y (0 1 0) so that positive speed drives forward")
    radii = []
    for collision in links[child].findall("collision"):
        geometry = collision.find("geometry")
        if geometry is None:
            continue
        shape = geometry.find("cylinder")
        if shape is None:
            shape = geometry.find("sphere")
        if shape is not None:
            radii.append(_positive(path, shape, "radius"))
    if not radii:
        raise WorldError(f"{path}: wheel link '{child}' (of joint '{joint_name}') has no cylinder or sphere "
                         "<collision> geometry to give the wheel radius")
    return frame[:3, 3], max(radii)


def parse_drive(path: Path | str) -> DriveGeometry:
    """Read wheel radius, wheel separation and footprint radius from a differential-drive URDF."""
    path = Path(path)
    root = _load(path)
    transforms, links = _link_transforms(path, root)
    joints = {joint.get("name"): joint for joint in root.findall("joint")}
    left, left_radius = _wheel(path, joints, links, transforms, LEFT_WHEEL_JOINT)
    right, right_radius = _wheel(path, joints, links, transforms, RIGHT_WHEEL_JOINT)
    if not math.isclose(left_radius, right_radius, rel_tol=1e-6):
        raise WorldError(f"{path}: wheel radii differ (left {left_radius}, right {right_radius}); "
                         "a differential drive needs equal wheels")
    if left[1] <= right[1]:
        raise WorldError(f"{path}: '{LEFT_WHEEL_JOINT}' (y = {left[1]}) must be to the left (+y) of "
                         f"'{RIGHT_WHEEL_JOINT}' (y = {right[1]})")
    separation = float(np.hypot(*(left - right)[:2]))
    reach = 0.0
    for name, link in links.items():
        for kind in ("collision", "visual"):
            for element in link.findall(kind):
                geometry = element.find("geometry")
                if geometry is None:
                    raise WorldError(f"{path}: a <{kind}> of link '{name}' has no <geometry>")
                if kind == "visual" and geometry.find("mesh") is not None:
                    continue  # a visual mesh has no size without loading it; collision meshes are refused
                reach = max(reach, _shape_reach(path, name, geometry, transforms[name] @ _origin(path, element)))
    return DriveGeometry(wheel_radius=float(left_radius), wheel_separation=separation, footprint_radius=reach)
