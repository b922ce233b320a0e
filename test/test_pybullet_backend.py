"""The URDF models, their drive geometry, and the PyBullet backend.

The URDF tests need only the standard library and numpy; the backend tests skip
cleanly when pybullet is not installed (`pip install 'altmarl_ros[sim]'`).

Tolerances, and why they are not zero: the wheels are velocity-controlled motors
whose torque is bounded by the URDF (0.1 N m per swarm-robot wheel, 0.4 N m per
leader wheel), so a step in the command takes a few hundredths of a second to be
reached (about 6 m/s^2 for a robot), and the wheels roll on Coulomb friction, so
they slip a little while accelerating or turning. Hence a robot commanded for
2 s at 0.2 m/s covers 0.4 m minus ~3 mm, and turning in place drifts its origin
by a millimetre or two. The tolerances below leave at least a 2x margin over what
was measured (PyBullet 3.2.7, 240 Hz).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from altmarl_ros.sim.backend import KinematicBackend, WorldError
from altmarl_ros.sim.urdf import DriveGeometry, leader_urdf_path, parse_drive, robot_urdf_path

RATE = 240.0


# --------------------------------------------------------------------------------------------
# URDF files and their geometry (no PyBullet needed)


def test_urdf_files_are_found_in_the_checkout():
    robot, leader = robot_urdf_path(), leader_urdf_path()
    assert robot.name == "swarm_robot.urdf" and robot.is_file()
    assert leader.name == "leader.urdf" and leader.is_file()
    assert robot.parent == leader.parent and robot.parent.name == "urdf"


def test_parse_drive_reads_the_geometry_in_the_files():
    robot = parse_drive(robot_urdf_path())
    assert isinstance(robot, DriveGeometry)
    assert robot.wheel_radius == pytest.approx(0.03)
    assert robot.wheel_separation == pytest.approx(0.15)
    # the wheels' outer corners stick out furthest: axle at y=0.075, half width 0.01, radius 0.03
    assert robot.footprint_radius == pytest.approx(math.hypot(0.03, 0.085))
    leader = parse_drive(leader_urdf_path())
    assert leader.wheel_radius == pytest.approx(0.05)
    assert leader.wheel_separation == pytest.approx(0.26)
    assert leader.footprint_radius == pytest.approx(math.hypot(0.05, 0.145))
    assert leader.footprint_radius > robot.footprint_radius + 0.05  # visibly bigger


def _robot_text() -> str:
    return robot_urdf_path().read_text()


def _write(tmp_path, text: str, name: str = "robot.urdf"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_drive_missing_file(tmp_path):
    with pytest.raises(WorldError, match="not found") as err:
        parse_drive(tmp_path / "nope.urdf")
    assert "nope.urdf" in str(err.value)


def test_parse_drive_malformed_xml(tmp_path):
    path = _write(tmp_path, _robot_text()[:-40])  # truncated: unclosed <robot>
    with pytest.raises(WorldError, match="not well-formed XML"):
        parse_drive(path)


def test_parse_drive_missing_wheel_joint(tmp_path):
    path = _write(tmp_path, _robot_text().replace('"right_wheel_joint"', '"rear_wheel_joint"'))
    with pytest.raises(WorldError, match="no joint named 'right_wheel_joint'") as err:
        parse_drive(path)
    assert "rear_wheel_joint" in str(err.value)  # lists the joints it did find


def test_parse_drive_wheel_without_geometry_or_wrong_axis(tmp_path):
    text = _robot_text()
    no_wheel = text.replace('<cylinder radius="0.03" length="0.004"/>', '<box size="0.06 0.004 0.06"/>')
    with pytest.raises(WorldError, match="no cylinder or sphere <collision> geometry"):
        parse_drive(_write(tmp_path, no_wheel))
    wrong_axis = text.replace('<axis xyz="0 1 0"/>', '<axis xyz="1 0 0"/>', 1)
    with pytest.raises(WorldError, match=r"must turn about \+y"):
        parse_drive(_write(tmp_path, wrong_axis))
    swapped = text.replace('xyz="0 0.075 0.03"', 'xyz="0 SWAP 0.03"').replace(
        'xyz="0 -0.075 0.03"', 'xyz="0 0.075 0.03"').replace('xyz="0 SWAP 0.03"', 'xyz="0 -0.075 0.03"')
    with pytest.raises(WorldError, match="must be to the left"):
        parse_drive(_write(tmp_path, swapped))
    not_robot = _write(tmp_path, "<model/>")
    with pytest.raises(WorldError, match="expected <robot>"):
        parse_drive(not_robot)


# --------------------------------------------------------------------------------------------
# The PyBullet backend


@pytest.fixture(scope="module")
def pb():
    return pytest.importorskip("pybullet")


def _backend(poses, **kwargs):
    from altmarl_ros.sim.pybullet_backend import PyBulletBackend

    return PyBulletBackend(np.asarray(poses, dtype=float), RATE, robot_urdf_path(), leader_urdf_path(), **kwargs)


def _wrap(angle):
    return float(np.angle(np.exp(1j * angle)))


# leader far away in a corner, robots spread out: nothing touches unless a test wants it to
SPREAD = [[-3.5, -3.5, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 1.2], [2.0, -2.0, -2.5]]


def test_straight_line_covers_the_commanded_distance(pb):
    with _backend(SPREAD) as world:
        start = world.poses()
        world.set_cmd_vel(np.full(4, 0.2), np.zeros(4))
        world.step(2.0)
        end = world.poses()
    for i in range(4):
        heading = np.array([math.cos(start[i, 2]), math.sin(start[i, 2])])
        moved = end[i, :2] - start[i, :2]
        # 0.4 m minus the spin-up (measured 2.5 to 3.5 mm short), within 2 cm; sideways drift and
        # heading change stay small
        assert float(moved @ heading) == pytest.approx(0.4, abs=0.02)
        assert abs(heading[0] * moved[1] - heading[1] * moved[0]) < 0.01
        assert abs(_wrap(end[i, 2] - start[i, 2])) < 0.02


def test_turning_in_place(pb):
    with _backend(SPREAD) as world:
        start = world.poses()
        world.set_cmd_vel(np.zeros(4), np.ones(4))
        world.step(1.0)
        end = world.poses()
    turned = [_wrap(end[i, 2] - start[i, 2]) for i in range(4)]
    assert turned == pytest.approx([1.0] * 4, abs=0.03)  # measured 0.992 to 0.998 rad
    assert np.hypot(*(end[:, :2] - start[:, :2]).T).max() < 0.02  # the origin stays put (it is on the axle)


@pytest.mark.parametrize("v, w", [(0.3, 0.5), (-0.2, 0.0), (0.0, 1.5), (0.5, -1.0)])
def test_measured_twists_match_the_commands_after_settling(pb, v, w):
    with _backend(SPREAD) as world:
        world.set_cmd_vel(np.full(4, v), np.full(4, w))
        world.step(1.0)
        twists = world.twists()
    # measured within 3 mm/s and 0.001 rad/s once the motors have reached their targets
    assert twists[:, 0] == pytest.approx([v] * 4, abs=0.01)
    assert twists[:, 1] == pytest.approx([w] * 4, abs=0.01)


def test_wheel_speed_limit_caps_the_speed(pb):
    # swarm robot wheels: <limit velocity="30"> rad/s x 0.03 m = 0.9 m/s; leader 20 x 0.05 = 1.0 m/s
    with _backend(SPREAD) as world:
        world.set_cmd_vel(np.full(4, 3.0), np.zeros(4))
        world.step(0.5)
        twists = world.twists()
    assert twists[0, 0] == pytest.approx(1.0, abs=0.03)
    assert twists[1:, 0] == pytest.approx([0.9] * 3, abs=0.03)


def test_robots_do_not_tip_over(pb):
    # hard manoeuvres at the world config's limits: full speed, full reverse, spins, arcs
    commands = [(0.6, 0.0), (-0.6, 0.0), (0.0, 2.5), (0.6, 2.5), (-0.6, -2.5), (0.0, 0.0)]
    worst_tilt, worst_z = 0.0, 0.0
    with _backend(SPREAD) as world:
        for v, w in commands:
            world.set_cmd_vel(np.full(4, v), np.full(4, w))
            for _ in range(10):
                world.step(0.05)
                origin, rpy = world.base_states()
                worst_tilt = max(worst_tilt, float(np.abs(rpy[:, :2]).max()))
                worst_z = max(worst_z, float(np.abs(origin[:, 2]).max()))
    # the rear caster floats 2 mm above the ground 6 cm behind the axle: pitch <= atan(2/60) = 0.033 rad
    assert worst_tilt < 0.05
    assert worst_z < 0.005


def test_robots_driven_into_each_other_do_not_pass_through(pb):
    poses = [[-3.5, -3.5, 0.0], [-0.3, 0.0, 0.0], [0.3, 0.0, math.pi]]
    closest = math.inf
    with _backend(poses) as world:
        world.set_cmd_vel(np.array([0.0, 0.3, 0.3]), np.zeros(3))
        for _ in range(30):
            world.step(0.1)
            p = world.poses()
            assert p[1, 0] < p[2, 0]  # never swap sides
            closest = min(closest, float(np.hypot(*(p[2, :2] - p[1, :2]))))
    # body shells are discs of radius 0.08 m: centres stay ~0.16 m apart (a few mm of contact give)
    assert 0.145 < closest < 0.2


def test_walls_stop_the_robots(pb):
    poses = [[-1.0, -1.0, 0.0], [1.6, 0.0, 0.0]]
    with _backend(poses, arena_half_size=2.0) as world:
        world.set_cmd_vel(np.array([0.0, 0.4]), np.zeros(2))
        world.step(3.0)
        x = world.poses()[1, 0]
    # inner face of the wall at x = 2.0; the body's front reaches 0.08 m ahead of the origin
    assert 1.85 < x < 2.0 - 0.075


def test_matches_the_kinematic_backend_over_a_short_run(pb):
    """The same smooth command sequence (10 Hz, as a controller sends it) on both backends.

    Measured: at most ~6 mm and ~0.002 rad apart over 4 s and ~0.95 m of travel; the
    difference is the motors' spin-up lag and wheel slip, which the unicycle model lacks.
    Tolerance 2 cm / 0.02 rad. (Step changes of the command at the torque limit lag more:
    up to ~0.1 rad per hard step; a controller's smooth commands do not.)
    """
    # six robots heading six ways (friction in Bullet is not perfectly isotropic), >= 1 m apart throughout
    yaws = np.linspace(-math.pi, math.pi, 6, endpoint=False)
    spots = [(-2.0, -1.5), (0.0, -1.5), (2.0, -1.5), (-2.0, 1.5), (0.0, 1.5), (2.0, 1.5)]
    poses = np.array([[-4.0, -4.0, 0.3]] + [[x, y, yaw] for (x, y), yaw in zip(spots, yaws, strict=True)])
    n = len(poses)
    kinematic = KinematicBackend(poses, RATE)
    with _backend(poses) as physics:
        for step in range(40):
            t = 0.1 * step
            v, w = 0.25 + 0.1 * math.sin(t), 0.8 * math.sin(0.9 * t)
            for backend in (kinematic, physics):
                backend.set_cmd_vel(np.full(n, v), np.full(n, w))
                backend.step(0.1)
            difference = physics.poses() - kinematic.poses()
            assert np.hypot(difference[:, 0], difference[:, 1]).max() < 0.02
            assert np.abs(np.angle(np.exp(1j * difference[:, 2]))).max() < 0.02


def test_poses_start_where_placed_and_twists_start_at_rest(pb):
    with _backend(SPREAD) as world:
        assert world.num_bodies == 4
        np.testing.assert_allclose(world.poses(), SPREAD, atol=1e-6)
        world.step(0.5)  # settles on its wheels and front caster, commanded to stand still
        np.testing.assert_allclose(world.poses(), SPREAD, atol=2e-3)
        np.testing.assert_allclose(world.twists(), 0.0, atol=5e-3)


def test_urdf_errors_are_world_errors(pb, tmp_path):
    from altmarl_ros.sim.pybullet_backend import PyBulletBackend

    poses = np.array(SPREAD[:2])
    with pytest.raises(WorldError, match="robot URDF: URDF file not found"):
        PyBulletBackend(poses, RATE, tmp_path / "missing.urdf", leader_urdf_path())
    bad_xml = _write(tmp_path, "<robot name='x'><link name='a'>", "bad.urdf")
    with pytest.raises(WorldError, match="leader URDF: .*not well-formed XML"):
        PyBulletBackend(poses, RATE, robot_urdf_path(), bad_xml)
    no_wheel = _write(tmp_path, _robot_text().replace('"left_wheel_joint"', '"wheel_l"'), "nowheel.urdf")
    with pytest.raises(WorldError, match="no joint named 'left_wheel_joint'"):
        PyBulletBackend(poses, RATE, no_wheel, leader_urdf_path())
    # well-formed, right joints, but PyBullet itself cannot load it (a visual mesh that does not exist)
    mesh = _robot_text().replace('<cylinder radius="0.08" length="0.05"/>', '<mesh filename="no_such_body.obj"/>', 1)
    with pytest.raises(WorldError, match="PyBullet could not load the robot URDF"):
        PyBulletBackend(poses, RATE, _write(tmp_path, mesh, "mesh.urdf"), leader_urdf_path())


def test_placement_and_argument_errors(pb):
    with pytest.raises(WorldError, match="overlap"):
        _backend([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]])  # leader 0.153 + robot 0.090 > 0.2
    with pytest.raises(WorldError, match="does not fit inside the walls"):
        _backend([[0.0, 0.0, 0.0], [4.95, 0.0, 0.0]])
    with pytest.raises(WorldError, match="shape"):
        _backend(np.zeros((3, 2)))
    with pytest.raises(WorldError, match="physics_rate"):
        from altmarl_ros.sim.pybullet_backend import PyBulletBackend

        PyBulletBackend(np.array(SPREAD), 0.0, robot_urdf_path(), leader_urdf_path())
    with _backend(SPREAD) as world:
        with pytest.raises(WorldError, match=r"shape \(4,\)"):
            world.set_cmd_vel(np.zeros(3), np.zeros(3))
        with pytest.raises(WorldError, match="NaN"):
            world.set_cmd_vel(np.array([0.0, np.nan, 0.0, 0.0]), np.zeros(4))
        world.set_cmd_vel(0.1, 0.0)  # scalars broadcast to every body
        with pytest.raises(WorldError, match="dt"):
            world.step(-0.1)


def test_private_clients_and_close(pb):
    first, second = _backend(SPREAD), _backend(SPREAD)
    assert first.client_id != second.client_id
    first.set_cmd_vel(0.2, 0.0)
    first.step(0.5)
    first.close()
    first.close()  # idempotent
    with pytest.raises(WorldError, match="closed"):
        first.poses()
    with pytest.raises(WorldError, match="closed"):
        first.step(0.1)
    second.step(0.5)  # unaffected by the other's motion or disconnection
    np.testing.assert_allclose(second.poses(), SPREAD, atol=2e-3)
    second.close()


def test_loading_prints_nothing_but_keeps_other_output(pb, capfd):
    import os

    from altmarl_ros.sim.pybullet_backend import filtered_output

    with _backend(SPREAD):  # URDF_MERGE_FIXED_LINKS prints five lines per body from C
        pass
    out, _ = capfd.readouterr()
    assert out == ""
    with filtered_output(1, ("processing ",)):
        os.write(1, b"processing base_link\nkept line\n")
    out, _ = capfd.readouterr()
    assert out == "kept line\n"


def test_fixed_links_are_merged_into_the_base(pb):
    with _backend(SPREAD) as world:
        p, cid = world._p, world.client_id
        names = {p.getJointInfo(world._bodies[1], j, physicsClientId=cid)[1].decode()
                 for j in range(p.getNumJoints(world._bodies[1], physicsClientId=cid))}
        assert names == {"left_wheel_joint", "right_wheel_joint"}  # the casters' fixed joints are gone
