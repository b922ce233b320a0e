"""PyBullet backend: the leader and n differential-drive robots loaded from URDF.

Body 0 is the leader (`leader.urdf`), bodies 1..n the robots (`swarm_robot.urdf`).
The world is a flat ground plane inside a square arena with low walls, under
gravity, stepped at `physics_rate` Hz. Each body's two wheel joints are
velocity-controlled motors whose torque is bounded by the URDF's `<limit
effort>`; `set_cmd_vel` turns (v, omega) into wheel speeds with the drive
geometry read from the URDF (`parse_drive`), so the robots move by wheel
contact and friction: they accelerate within their torque limits, may slip,
and push against each other and the walls.

Every PyBullet call names this backend's own physics client, so several
backends (and other PyBullet users) can live in one process.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np

from altmarl_ros.sim.backend import WorldError
from altmarl_ros.sim.urdf import LEFT_WHEEL_JOINT, RIGHT_WHEEL_JOINT, DriveGeometry, parse_drive

DEFAULT_ARENA_HALF_SIZE = 5.0  # m
WALL_HEIGHT = 0.1  # m
WALL_THICKNESS = 0.05  # m
GRAVITY = 9.81  # m/s^2
DEFAULT_WHEEL_TORQUE = 1.0  # N m, when the URDF's wheel joint has no <limit effort>
GROUND_FRICTION = 1.0  # Bullet multiplies the two coefficients: tyre 2.0 x ground 1.0, caster 0.01 x 1.0
WALL_FRICTION = 0.3

_BANNER = "pybullet build time:"
# What URDF_MERGE_FIXED_LINKS prints (C printf, fd 1) for every body it loads
_MERGE_CHATTER = ("processing ", "\tprocessing ", "\tmerge ", "\t\trelink ")
# PyBullet's default is 50 sweeps of the contact solver per step. With the robots' fixed links merged,
# 20 hold a parked robot as still as 50 did unmerged (measured yaw rate at rest 7e-5 rad/s against 2e-3)
# and keep the kinematic/PyBullet agreement of test_sim_pybullet_world (<= 0.037 m), at 1.6x the speed.
SOLVER_ITERATIONS = 20
_pybullet: ModuleType | None = None


@contextmanager
def filtered_output(fd: int, drop: tuple[str, ...]) -> Iterator[None]:
    """Hold what C code writes to `fd` meanwhile and pass on every line not starting with one of `drop`.

    PyBullet prints with C stdio, below sys.stdout/sys.stderr, so only the file descriptor can be caught.
    Without a usable descriptor (an embedded interpreter) nothing is filtered.
    """
    stream = sys.stdout if fd == 1 else sys.stderr
    try:
        stream.flush()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), fd)
        try:
            yield
        finally:
            if fd == 1:
                _flush_c_stdout()
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            rest = "".join(line for line in lines if not line.startswith(drop))
            if rest:
                stream.write(rest)
                stream.flush()


def _flush_c_stdout() -> None:
    """C stdout is buffered when it is not a terminal: flush it into the captured file before switching back."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask (not Linux/macOS): lines may come out late
        pass


def import_pybullet() -> ModuleType:
    """Import pybullet without its 'pybullet build time' banner on stderr; anything else it prints stays."""
    global _pybullet
    if _pybullet is not None:
        return _pybullet
    if "pybullet" in sys.modules:
        _pybullet = sys.modules["pybullet"]
        return _pybullet
    try:
        with filtered_output(2, (_BANNER,)):
            import pybullet
    except ImportError as err:
        raise WorldError("the PyBullet backend needs pybullet: pip install 'altmarl_ros[sim]' "
                         f"(or pip install pybullet); import failed: {err}") from err
    _pybullet = pybullet
    return pybullet


def quiet_urdf_loading() -> AbstractContextManager[None]:
    """Around loadURDF calls: drop the lines URDF_MERGE_FIXED_LINKS prints per body (5,000 for 1,000 robots)."""
    return filtered_output(1, _MERGE_CHATTER)


def urdf_flags(p: ModuleType) -> int:
    """loadURDF flags for the robots: the URDF's own inertia (not recomputed from the collision shapes),
    smooth implicit cylinders for the wheels (Bullet otherwise rolls a faceted convex hull that bumps),
    visual shapes shared between identical bodies (about halves the load time of 1000 robots), and fixed
    links (casters, mast) merged into the base: the solver then has 3 links per robot instead of 5, which
    made n = 100 14 % faster and a parked robot 30x stiller at rest."""
    return (p.URDF_USE_INERTIA_FROM_FILE | p.URDF_USE_IMPLICIT_CYLINDER | p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES
            | p.URDF_MERGE_FIXED_LINKS)


def configure_solver(p: ModuleType, client: int) -> None:
    """The contact solver settings every altmarl world uses (see SOLVER_ITERATIONS)."""
    p.setPhysicsEngineParameter(numSolverIterations=SOLVER_ITERATIONS, physicsClientId=client)


def _check_urdf(path: Path | str, role: str) -> tuple[Path, DriveGeometry]:
    path = Path(path)
    try:
        return path, parse_drive(path)
    except WorldError as err:
        raise WorldError(f"{role} URDF: {err}") from None


class PyBulletBackend:
    """Rigid-body physics of the leader and the robots (see the module docstring).

    Construction validates everything first (poses, rates, URDFs, arena) and raises
    `WorldError` naming what is wrong; bodies whose footprint discs overlap, or that
    stick out of the arena, are rejected because PyBullet would fling them apart.
    """

    def __init__(self, initial_poses: np.ndarray, physics_rate: float, robot_urdf: Path, leader_urdf: Path,
                 gui: bool = False, arena_half_size: float = DEFAULT_ARENA_HALF_SIZE) -> None:
        self._client: int | None = None  # set first: close() and __del__ rely on it
        poses = np.array(initial_poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) < 1:
            raise WorldError(f"initial poses must have shape (bodies, 3) with bodies >= 1 (leader first), "
                             f"got {poses.shape}")
        if not np.all(np.isfinite(poses)):
            raise WorldError("initial poses contain NaN or inf")
        if not (np.isfinite(physics_rate) and physics_rate > 0):
            raise WorldError(f"physics_rate must be a positive number of Hz, got {physics_rate!r}")
        if not (np.isfinite(arena_half_size) and arena_half_size > 0):
            raise WorldError(f"arena_half_size must be a positive number of metres, got {arena_half_size!r}")
        self.robot_urdf, self.robot_drive = _check_urdf(robot_urdf, "robot")
        self.leader_urdf, self.leader_drive = _check_urdf(leader_urdf, "leader")
        self.num_bodies = len(poses)
        self.physics_rate = float(physics_rate)
        self.physics_dt = 1.0 / self.physics_rate
        self.arena_half_size = float(arena_half_size)
        self.gui = bool(gui)

        drives = [self.leader_drive] + [self.robot_drive] * (self.num_bodies - 1)
        self._wheel_radius = np.array([d.wheel_radius for d in drives])
        self._half_track = np.array([d.wheel_separation / 2 for d in drives])
        self.footprint_radii = np.array([d.footprint_radius for d in drives])
        self._check_placement(poses)

        if self.gui and sys.platform.startswith("linux") and not (
                os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise WorldError("gui=True needs a display, but neither DISPLAY nor WAYLAND_DISPLAY is set; "
                             "run headless with gui=False")
        self._p = import_pybullet()
        p = self._p
        client = p.connect(p.GUI if self.gui else p.DIRECT)
        if client < 0:
            raise WorldError("could not start a PyBullet " + ("GUI (only one GUI per process)" if self.gui
                                                              else "DIRECT") + " physics client")
        self._client = client
        try:
            self._build_world()
            self._load_bodies(poses)
        except BaseException:
            self.close()
            raise

    # --- construction ----------------------------------------------------------------------
    def _check_placement(self, poses: np.ndarray) -> None:
        xy, radii = poses[:, :2], self.footprint_radii
        outside = np.flatnonzero(np.any(np.abs(xy) + radii[:, None] > self.arena_half_size, axis=1))
        if len(outside):
            i = int(outside[0])
            raise WorldError(f"body {i} at ({xy[i, 0]:.3f}, {xy[i, 1]:.3f}) with footprint radius {radii[i]:.3f} m "
                             f"does not fit inside the walls at +-{self.arena_half_size} m "
                             f"({len(outside)} bodies outside)")
        for i in range(len(xy) - 1):  # row by row: O(n) memory, fast enough for thousands of bodies
            gaps = np.hypot(*(xy[i + 1:] - xy[i]).T) - (radii[i + 1:] + radii[i])
            hit = np.flatnonzero(gaps < -1e-9)
            if len(hit):
                j = i + 1 + int(hit[0])
                raise WorldError(f"bodies {i} and {j} overlap: centres {np.hypot(*(xy[j] - xy[i])):.3f} m apart, "
                                 f"footprint radii {radii[i]:.3f} + {radii[j]:.3f} m; space them further apart")

    def _build_world(self) -> None:
        p, cid = self._p, self._client
        if self.gui:
            p.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 0, physicsClientId=cid)
            p.configureDebugVisualizer(p.COV_ENABLE_GUI, 0, physicsClientId=cid)
        p.setGravity(0.0, 0.0, -GRAVITY, physicsClientId=cid)
        p.setTimeStep(self.physics_dt, physicsClientId=cid)
        configure_solver(p, cid)
        half = self.arena_half_size
        ground = p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=p.createCollisionShape(p.GEOM_PLANE, physicsClientId=cid),
            baseVisualShapeIndex=p.createVisualShape(
                p.GEOM_BOX, halfExtents=[half + WALL_THICKNESS, half + WALL_THICKNESS, 0.0005],
                rgbaColor=[0.82, 0.82, 0.78, 1.0], visualFramePosition=[0.0, 0.0, -0.0005], physicsClientId=cid),
            physicsClientId=cid)
        p.changeDynamics(ground, -1, lateralFriction=GROUND_FRICTION, rollingFriction=0.0, spinningFriction=0.0,
                         restitution=0.0, physicsClientId=cid)
        # Four low walls whose inner faces are at +-half.
        long_half = half + WALL_THICKNESS
        for axis in (0, 1):
            extents = [long_half, WALL_THICKNESS / 2, WALL_HEIGHT / 2] if axis == 1 else \
                [WALL_THICKNESS / 2, long_half, WALL_HEIGHT / 2]
            collision = p.createCollisionShape(p.GEOM_BOX, halfExtents=extents, physicsClientId=cid)
            visual = p.createVisualShape(p.GEOM_BOX, halfExtents=extents, rgbaColor=[0.45, 0.45, 0.45, 1.0],
                                         physicsClientId=cid)
            for sign in (-1.0, 1.0):
                position = [0.0, 0.0, WALL_HEIGHT / 2]
                position[axis] = sign * (half + WALL_THICKNESS / 2)
                wall = p.createMultiBody(0.0, collision, visual, basePosition=position, physicsClientId=cid)
                p.changeDynamics(wall, -1, lateralFriction=WALL_FRICTION, restitution=0.0, physicsClientId=cid)

    def _load_bodies(self, poses: np.ndarray) -> None:
        p, cid = self._p, self._client
        flags = urdf_flags(p)
        bodies, wheels, torque, max_speed, inertial = [], [], [], [], []
        layout: dict[str, tuple] = {}
        with quiet_urdf_loading():
            for i, (x, y, yaw) in enumerate(poses):
                path = self.leader_urdf if i == 0 else self.robot_urdf
                try:
                    body = p.loadURDF(str(path), basePosition=[x, y, 0.0],
                                      baseOrientation=p.getQuaternionFromEuler([0.0, 0.0, yaw]),
                                      useFixedBase=False, flags=flags, physicsClientId=cid)
                except p.error as err:
                    role = "leader" if i == 0 else "robot"
                    raise WorldError(f"PyBullet could not load the {role} URDF {path}: {err} "
                                     "(PyBullet's own b3Error/b3Warning lines above say why)") from None
                if str(path) not in layout:
                    layout[str(path)] = self._joint_layout(body, path)
                joints, forces, speed = layout[str(path)]
                # Passive joints other than the wheels (none in the shipped URDFs) must not brake:
                # PyBullet gives every revolute/prismatic joint a velocity motor by default.
                for joint in joints["passive"]:
                    p.setJointMotorControl2(body, joint, p.VELOCITY_CONTROL, targetVelocity=0.0, force=0.0,
                                            physicsClientId=cid)
                bodies.append(body)
                wheels.append(joints["wheels"])
                torque.append(forces)
                max_speed.append(speed)
                inertial.append(p.getDynamicsInfo(body, -1, physicsClientId=cid)[3:5])
        self._bodies = bodies
        self._wheels = wheels
        self._torque = torque
        self._max_wheel_speed = np.array(max_speed)
        # PyBullet reports the base's inertial (centre-of-mass) frame; keep where it sits in the link frame
        self._com_offset = np.array([pos for pos, _ in inertial], dtype=np.float64)
        self._com_rotation = _rotations(np.array([orn for _, orn in inertial], dtype=np.float64))
        self._wheel_targets = np.full((self.num_bodies, 2), np.nan)
        self.set_cmd_vel(np.zeros(self.num_bodies), np.zeros(self.num_bodies))  # hold still, motors engaged
        if self.gui:
            p.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 1, physicsClientId=cid)
            p.resetDebugVisualizerCamera(cameraDistance=2.2 * self.arena_half_size, cameraYaw=0.0,
                                         cameraPitch=-60.0, cameraTargetPosition=[0.0, 0.0, 0.0],
                                         physicsClientId=cid)

    def _joint_layout(self, body: int, path: Path) -> tuple[dict[str, list[int]], list[float], float]:
        """Wheel joint indices [left, right], their torque bounds and speed limit, and the passive joints."""
        p, cid = self._p, self._client
        by_name, passive = {}, []
        for j in range(p.getNumJoints(body, physicsClientId=cid)):
            info = p.getJointInfo(body, j, physicsClientId=cid)
            by_name[info[1].decode()] = info
            if info[2] in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC) and info[1].decode() not in (LEFT_WHEEL_JOINT,
                                                                                             RIGHT_WHEEL_JOINT):
                passive.append(j)
        infos = []
        for name in (LEFT_WHEEL_JOINT, RIGHT_WHEEL_JOINT):
            if name not in by_name or by_name[name][2] != p.JOINT_REVOLUTE:
                raise WorldError(f"{path}: PyBullet finds no revolute joint '{name}' (joints: {sorted(by_name)})")
            infos.append(by_name[name])
        forces = [float(info[10]) if info[10] > 0 else DEFAULT_WHEEL_TORQUE for info in infos]
        limits = [float(info[11]) for info in infos if info[11] > 0]
        return {"wheels": [info[0] for info in infos], "passive": passive}, forces, min(limits, default=math.inf)

    # --- the Backend protocol ----------------------------------------------------------------
    def set_cmd_vel(self, linear: np.ndarray, angular: np.ndarray) -> None:
        """Wheel speeds for (v, omega) per body; both wheels scale down together past the joint speed limit."""
        self._require_open()
        try:
            v = np.broadcast_to(np.asarray(linear, dtype=np.float64), (self.num_bodies,))
            w = np.broadcast_to(np.asarray(angular, dtype=np.float64), (self.num_bodies,))
        except ValueError:
            raise WorldError(f"cmd_vel arrays must have shape ({self.num_bodies},), got "
                             f"{np.shape(linear)} and {np.shape(angular)}") from None
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(w))):
            raise WorldError("cmd_vel contains NaN or inf")
        left = (v - w * self._half_track) / self._wheel_radius
        right = (v + w * self._half_track) / self._wheel_radius
        targets = np.stack([left, right], axis=1)
        peak = np.max(np.abs(targets), axis=1)
        over = peak > self._max_wheel_speed
        targets[over] *= (self._max_wheel_speed[over] / peak[over])[:, None]
        changed = np.flatnonzero(np.any(targets != self._wheel_targets, axis=1))
        p, cid = self._p, self._client
        for i in changed:  # motor targets persist in PyBullet: only send what changed
            p.setJointMotorControlArray(self._bodies[i], self._wheels[i], p.VELOCITY_CONTROL,
                                        targetVelocities=targets[i].tolist(), forces=self._torque[i],
                                        physicsClientId=cid)
        self._wheel_targets[changed] = targets[changed]

    def step(self, dt: float) -> None:
        """Advance by round(dt * physics_rate) physics steps (at least one)."""
        self._require_open()
        if not (np.isfinite(dt) and dt >= 0):
            raise WorldError(f"step dt must be a finite number of seconds >= 0, got {dt!r}")
        p, cid = self._p, self._client
        for _ in range(max(1, int(round(dt / self.physics_dt)))):
            p.stepSimulation(physicsClientId=cid)

    def poses(self) -> np.ndarray:
        """(num_bodies, 3): x, y of each base link's origin (the footprint centre) and its yaw."""
        origin, rotation = self._link_frames()
        yaw = np.arctan2(rotation[:, 1, 0], rotation[:, 0, 0])
        return np.column_stack([origin[:, :2], yaw])

    def twists(self) -> np.ndarray:
        """(num_bodies, 2): measured forward speed of the base origin along the heading, and yaw rate."""
        self._require_open()
        p, cid = self._p, self._client
        velocities = [p.getBaseVelocity(body, physicsClientId=cid) for body in self._bodies]
        linear = np.array([lin for lin, _ in velocities], dtype=np.float64)
        angular = np.array([ang for _, ang in velocities], dtype=np.float64)
        _, rotation = self._link_frames()
        # velocity of the link origin, not of the centre of mass: v_o = v_com + omega x (o - com)
        lever = -np.einsum("nij,nj->ni", rotation, self._com_offset)
        origin_velocity = linear + np.cross(angular, lever)
        heading = rotation[:, :, 0]
        forward = np.einsum("ni,ni->n", origin_velocity[:, :2], heading[:, :2]) / np.maximum(
            np.hypot(heading[:, 0], heading[:, 1]), 1e-12)
        return np.column_stack([forward, angular[:, 2]])

    def close(self) -> None:
        """Disconnect from the physics server; safe to call twice."""
        client, self._client = getattr(self, "_client", None), None
        if client is not None and self._p.isConnected(physicsClientId=client):
            self._p.disconnect(physicsClientId=client)

    # --- extras --------------------------------------------------------------------------------
    @property
    def client_id(self) -> int:
        """This backend's PyBullet physics client id (for debugging, rendering, contact queries)."""
        self._require_open()
        return self._client

    def base_states(self) -> tuple[np.ndarray, np.ndarray]:
        """Full 3-D state: (num_bodies, 3) base link origins and (num_bodies, 3) roll, pitch, yaw."""
        origin, rotation = self._link_frames()
        roll = np.arctan2(rotation[:, 2, 1], rotation[:, 2, 2])
        pitch = np.arcsin(np.clip(-rotation[:, 2, 0], -1.0, 1.0))
        yaw = np.arctan2(rotation[:, 1, 0], rotation[:, 0, 0])
        return origin, np.column_stack([roll, pitch, yaw])

    def __enter__(self) -> PyBulletBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: pybullet may already be torn down; nothing to report to
            pass

    # --- helpers -------------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._client is None:
            raise WorldError("this PyBulletBackend is closed")

    def _link_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """Base link origins (n, 3) and orientations (n, 3, 3) in the world, from PyBullet's inertial frames."""
        self._require_open()
        p, cid = self._p, self._client
        states = [p.getBasePositionAndOrientation(body, physicsClientId=cid) for body in self._bodies]
        com = np.array([pos for pos, _ in states], dtype=np.float64)
        com_rotation = _rotations(np.array([orn for _, orn in states], dtype=np.float64))
        rotation = com_rotation @ self._com_rotation.transpose(0, 2, 1)
        return com - np.einsum("nij,nj->ni", rotation, self._com_offset), rotation


def _rotations(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) of unit quaternions (n, 4) in PyBullet's x, y, z, w order."""
    x, y, z, w = q.T
    rotation = np.empty((len(q), 3, 3))
    rotation[:, 0, 0] = 1 - 2 * (y * y + z * z)
    rotation[:, 0, 1] = 2 * (x * y - z * w)
    rotation[:, 0, 2] = 2 * (x * z + y * w)
    rotation[:, 1, 0] = 2 * (x * y + z * w)
    rotation[:, 1, 1] = 1 - 2 * (x * x + z * z)
    rotation[:, 1, 2] = 2 * (y * z - x * w)
    rotation[:, 2, 0] = 2 * (x * z - y * w)
    rotation[:, 2, 1] = 2 * (y * z + x * w)
    rotation[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return rotation
