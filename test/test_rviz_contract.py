"""RViz contract: config/altmarl.rviz and the markers of a recorded run, checked against what RViz 2 needs.

RViz fails quietly: a marker in an unknown frame, with a zero scale, a zero alpha, an unnormalised
quaternion or a duplicate (ns, id) is simply not drawn (at most a status line in the Displays panel), and a
display on a topic nobody publishes stays empty. The rules live in `altmarl_ros.viz_contract` (with the rviz2
sources they come from); here they are applied to the shipped config and to a recorded graph run (n = 10,
k = 4, 8 decision steps at 4x real time, read back with rosbags, a reader independent of the recorder), and
the checker itself is shown to reject each kind of bad marker and config. The picture of the recorded
markers (`altmarl render`) is checked pixel by pixel against the marker positions and colours.
"""

from __future__ import annotations

import copy
import math
import os
import random
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from altmarl_ros.nodes import topics
from altmarl_ros.viz_contract import (
    ADD,
    CUBE_LIST,
    CYLINDER,
    DELETE,
    DELETEALL,
    LINE_LIST,
    LINE_STRIP,
    MESH_RESOURCE,
    POINTS,
    SPHERE,
    SPHERE_LIST,
    TEXT_VIEW_FACING,
    TRIANGLE_LIST,
    check_marker,
    check_marker_array,
    check_rviz_config,
    display_topics,
    published_type,
    qos_compatible,
)
from altmarl_ros.viz_render import replay_markers, stamp_seconds

REPO = Path(__file__).resolve().parents[1]
RVIZ_FILE = REPO / "config" / "altmarl.rviz"
N, K, STEPS = 10, 4, 8
WORLD = """world:
  zone_radius: 1.3
  ring_radius: 2.35
  arena_half_size: 4.2
  decision_period: 6.0
"""


def _readme_topics() -> dict[str, str]:
    """Topic name (placeholders kept) -> pkg/msg/Type, from the topic table of README.md."""
    published = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`/"):
            continue
        package, _, name = cells[1].partition("/")
        for topic in re.findall(r"`(/[^`]+)`", cells[0]):
            published[topic] = f"{package}/msg/{name}"
    return published


def _rviz_config() -> dict:
    return yaml.safe_load(RVIZ_FILE.read_text(encoding="utf-8"))


def _marker_display(config: dict) -> dict:
    (display,) = [d for d in config["Visualization Manager"]["Displays"]
                  if d["Class"] == "rviz_default_plugins/MarkerArray"]
    return display


# --------------------------------------------------------------------------------------------
# (a) the .rviz config

def test_readme_topic_table_is_what_topics_py_names():
    published = _readme_topics()
    for name in (topics.SAMPLE_REQUEST, topics.SAMPLES, topics.GLOBAL, topics.HEARTBEAT, topics.STATS,
                 topics.MARKERS, "/clock", "/tf", f"/{topics.LEADER}/odom"):
        assert name in published, f"{name} missing from the README topic table"
    assert published[topics.MARKERS] == "visualization_msgs/msg/MarkerArray"
    assert published_type(f"/{topics.robot_namespace(7)}/odom", published) == "nav_msgs/msg/Odometry"
    assert published_type("/robot_7/odom/extra", published) is None
    assert published_type("/altmarl/marker", published) is None


def test_rviz_config_is_one_rviz2_loads_and_subscribes_to_what_the_package_publishes():
    config = _rviz_config()
    assert check_rviz_config(config, _readme_topics(), topics.WORLD_FRAME) == []
    topic, qos = display_topics(config)["altmarl"]
    assert topic == topics.MARKERS and qos["Reliability Policy"] in ("Reliable", "Best Effort")


def _set(path: str, value):
    """An edit of the parsed config: a '/'-separated path; a digit indexes a list."""
    def edit(config: dict) -> None:
        *parents, last = path.split("/")
        node = config
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set("Visualization Manager/Global Options/Fixed Frame", "map"), "Fixed Frame is 'map', not 'world'"),
    (_set("Visualization Manager/Displays/1/Class", "rviz/MarkerArray"), "is not an rviz_default_plugins display"),
    (_set("Visualization Manager/Displays/1/Class", "rviz_default_plugins/MarkerArrays"), "not an rviz_default"),
    (_set("Visualization Manager/Displays/1/Topic/Value", "/altmarl/marker"), "is not one the package publishes"),
    (_set("Visualization Manager/Displays/1/Topic/Value", "/robot_3/odom"), "carries nav_msgs/msg/Odometry"),
    (_set("Visualization Manager/Displays/1/Class", "rviz_default_plugins/Marker"), "takes ('visualization_msgs/m"),
    (_set("Visualization Manager/Displays/1/Topic/Durability Policy", "TransientLocal"), "is not one of"),
    (_set("Visualization Manager/Displays/1/Topic/Reliability Policy", "reliable"), "is not one of"),
    (_set("Visualization Manager/Displays/1/Topic/Depth", 0), "Depth 0 is not a positive integer"),
    (_set("Visualization Manager/Displays/0/Reference Frame", "map"), "Reference Frame 'map'"),
    (_set("Visualization Manager/Displays/1/Name", "Grid"), "name used by more than one display"),
    (_set("Visualization Manager/Views/Current/Class", "rviz/TopDownOrtho"), "not an rviz_default_plugins view"),
    (_set("Visualization Manager/Tools/0/Class", "rviz/MoveCamera"), "not an rviz_default_plugins tool"),
    (_set("Panels/0/Class", "rviz/Displays"), "not an rviz_common panel"),
    (_set("Visualization Manager/Displays", []), "no displays"),
])
def test_config_checker_rejects_a_broken_config(edit, message):
    config = copy.deepcopy(_rviz_config())
    edit(config)
    problems = check_rviz_config(config, _readme_topics(), topics.WORLD_FRAME)
    assert any(message in p for p in problems), problems


def test_qos_check_rejects_requests_no_publisher_can_serve():
    volatile_reliable = [{"reliability": 1, "durability": 2}]
    assert qos_compatible({"Reliability Policy": "Reliable", "Durability Policy": "Volatile"}, volatile_reliable) == []
    assert qos_compatible({"Durability Policy": "Transient Local"}, volatile_reliable)
    assert qos_compatible({"Reliability Policy": "Reliable"}, [{"reliability": 2, "durability": 2}])


# --------------------------------------------------------------------------------------------
# the marker checker on hand-made markers (duck-typed like every decoder's messages)

def _v(**values):
    return SimpleNamespace(**values)


def _marker(kind: int = CYLINDER, **changes) -> SimpleNamespace:
    """A marker RViz accepts (of `kind`), then `changes` (dotted names like 'scale.z' or whole fields)."""
    points = {LINE_STRIP: 2, LINE_LIST: 2, TRIANGLE_LIST: 3, SPHERE_LIST: 1, CUBE_LIST: 1, POINTS: 1}.get(kind, 0)
    m = _v(header=_v(frame_id="world", stamp=_v(sec=1, nanosec=0)), ns="zones", id=0, type=kind, action=ADD,
           pose=_v(position=_v(x=0.0, y=0.0, z=0.0), orientation=_v(x=0.0, y=0.0, z=0.0, w=1.0)),
           scale=_v(x=0.5, y=0.5, z=0.5), color=_v(r=0.2, g=0.4, b=0.6, a=1.0), lifetime=_v(sec=0, nanosec=0),
           frame_locked=False, points=[_v(x=float(i), y=0.0, z=0.0) for i in range(points)], colors=[],
           text="zone 0" if kind == TEXT_VIEW_FACING else "", mesh_resource="package://x/m.dae"
           if kind == MESH_RESOURCE else "", mesh_use_embedded_materials=False)
    for key, value in changes.items():
        node, *rest = key.split(".")
        if rest:
            setattr(getattr(m, node), rest[0], value)
        else:
            setattr(m, node, value)
    return m


FRAMES = {"world"}


@pytest.mark.parametrize("kind", [CYLINDER, SPHERE, SPHERE_LIST, CUBE_LIST, LINE_STRIP, LINE_LIST, TEXT_VIEW_FACING,
                                  MESH_RESOURCE, TRIANGLE_LIST, POINTS, 0, 1])
def test_good_markers_pass(kind):
    assert check_marker(_marker(kind), FRAMES) == []


def test_what_rviz_ignores_is_not_required():
    # lines use only scale.x, text only scale.z; deletes need no frame or geometry
    assert check_marker(_marker(LINE_STRIP, **{"scale.y": 0.0, "scale.z": 0.0}), FRAMES) == []
    assert check_marker(_marker(TEXT_VIEW_FACING, **{"scale.x": 0.0, "scale.y": 0.0}), FRAMES) == []
    assert check_marker(_marker(action=DELETE, **{"header.frame_id": "", "scale.x": 0.0}), FRAMES) == []
    assert check_marker(_marker(action=DELETEALL, ns="", type=99), FRAMES) == []
    colours = [_v(r=1.0, g=0.0, b=0.0, a=1.0)]
    assert check_marker(_marker(SPHERE_LIST, colors=colours, **{"color.a": 0.0}), FRAMES) == []  # per-point wins
    assert check_marker(_marker(**{"header.frame_id": "leader/base_link"}), {"world", "leader/base_link"}) == []


def _nan_point(kind: int = SPHERE_LIST):
    return _marker(kind, points=[_v(x=math.inf, y=0.0, z=0.0)])


@pytest.mark.parametrize("marker, message", [
    (_marker(**{"header.frame_id": ""}), "empty header.frame_id"),
    (_marker(**{"header.frame_id": "map"}), "frame 'map' is neither the fixed frame nor on /tf"),
    (_marker(**{"header.frame_id": "/world"}), "frame '/world' is neither"),
    (_marker(action=1), "unknown action 1"),
    (_marker(type=12), "type 12 is not one RViz renders"),
    (_marker(type=-1), "type -1 is not one RViz renders"),
    (_marker(**{"scale.z": 0.0}), "CYLINDER needs scale.z > 0"),
    (_marker(SPHERE, **{"scale.x": -0.3}), "SPHERE needs scale.x > 0"),
    (_marker(SPHERE_LIST, **{"scale.y": 0.0}), "SPHERE_LIST needs scale.y > 0"),
    (_marker(LINE_STRIP, **{"scale.x": 0.0}), "LINE_STRIP needs scale.x > 0"),
    (_marker(TEXT_VIEW_FACING, **{"scale.z": 0.0}), "TEXT_VIEW_FACING needs scale.z > 0"),
    (_marker(**{"color.a": 0.0}), "color with alpha 0"),
    (_marker(SPHERE_LIST, points=[_v(x=0.0, y=0.0, z=0.0)] * 2,
             colors=[_v(r=1.0, g=0.0, b=0.0, a=1.0), _v(r=1.0, g=0.0, b=0.0, a=0.0)]), "per-point colours [1]"),
    (_marker(SPHERE_LIST, colors=[_v(r=1.0, g=0.0, b=0.0, a=1.0)] * 3), "3 colours for 1 points"),
    (_marker(**{"color.g": 1.5}), "outside [0, 1]"),
    (_marker(**{"pose.orientation": _v(x=0.0, y=0.0, z=0.0, w=0.0)}), "is not a unit quaternion"),
    (_marker(**{"pose.orientation": _v(x=0.0, y=0.0, z=0.0, w=2.0)}), "is not a unit quaternion"),
    (_marker(**{"pose.position": _v(x=math.nan, y=0.0, z=0.0)}), "NaN or infinite"),
    (_marker(**{"scale.x": math.inf}), "NaN or infinite"),
    (_nan_point(), "NaN or infinite"),
    (_marker(SPHERE_LIST, points=[]), "SPHERE_LIST needs at least 1 points, got 0"),
    (_marker(LINE_STRIP, points=[_v(x=0.0, y=0.0, z=0.0)]), "LINE_STRIP needs at least 2 points"),
    (_marker(LINE_LIST, points=[_v(x=0.0, y=0.0, z=0.0)] * 3), "LINE_LIST needs an even number"),
    (_marker(TRIANGLE_LIST, points=[_v(x=0.0, y=0.0, z=0.0)] * 4), "multiple of 3 points"),
    (_marker(TEXT_VIEW_FACING, text=""), "TEXT_VIEW_FACING with empty text"),
    (_marker(MESH_RESOURCE, mesh_resource=""), "MESH_RESOURCE without mesh_resource"),
    (_marker(0, points=[_v(x=0.0, y=0.0, z=0.0)]), "ARROW takes 0 or 2 points"),
    (_marker(lifetime=_v(sec=-1, nanosec=0)), "negative lifetime"),
])
def test_marker_checker_rejects_each_bad_marker(marker, message):
    problems = check_marker(marker, FRAMES)
    assert any(message in p for p in problems), problems


def test_marker_array_checker_rejects_a_duplicate_ns_id():
    good = SimpleNamespace(markers=[_marker(id=0), _marker(id=1), _marker(ns="robots", id=0)])
    assert check_marker_array(good, FRAMES) == []
    bad = SimpleNamespace(markers=[_marker(id=0), _marker(SPHERE, id=0)])
    assert any("('zones', 0): (ns, id) occurs twice" in p for p in check_marker_array(bad, FRAMES))


def test_fake_marker_has_the_fields_of_the_real_message():
    pytest.importorskip("rclpy")
    from visualization_msgs.msg import Marker

    assert set(vars(_marker())) <= set(Marker.get_fields_and_field_types())
    real = Marker(ns="zones", id=0, type=Marker.CYLINDER, action=Marker.ADD)
    assert any("empty header.frame_id" in p for p in check_marker(real, FRAMES))
    real.header.frame_id = "world"
    assert any("needs scale.x/y/z > 0" in p for p in check_marker(real, FRAMES))  # default scale is 0
    real.scale.x = real.scale.y = real.scale.z = 1.0
    assert any("alpha 0" in p for p in check_marker(real, FRAMES))  # default colour is transparent black
    real.color.a = 1.0
    assert check_marker(real, FRAMES) == []  # ROS 2's Quaternion defaults to w = 1
    real.pose.orientation.w = 0.0
    assert any("not a unit quaternion" in p for p in check_marker(real, FRAMES))


# --------------------------------------------------------------------------------------------
# replaying markers as RViz does (the picture's source)

def _at(stamp: float, ns: str, index: int, action: int = ADD, **changes):
    return _marker(ns=ns, id=index, action=action, header=_v(frame_id="world",
                                                                stamp=_v(sec=int(stamp), nanosec=0)), **changes)


def test_replay_keeps_the_latest_marker_of_each_ns_id_and_applies_deletes():
    arrays = [SimpleNamespace(markers=[_at(1, "zones", 0), _at(1, "zones", 1), _at(1, "robots", 0)]),
              SimpleNamespace(markers=[_at(2, "zones", 0, **{"pose.position": _v(x=5.0, y=0.0, z=0.0)})]),
              SimpleNamespace(markers=[_at(3, "zones", 1, DELETE)]),
              SimpleNamespace(markers=[_at(4, "robots", 0, DELETEALL)]),
              SimpleNamespace(markers=[_at(5, "", 0, DELETEALL)])]
    assert set(replay_markers(arrays, 1.0).markers) == {("zones", 0), ("zones", 1), ("robots", 0)}
    scene = replay_markers(arrays, 2.5)
    assert scene.markers[("zones", 0)].pose.position.x == 5.0 and scene.time == 2.5
    assert set(replay_markers(arrays, 3.0).markers) == {("zones", 0), ("robots", 0)}
    assert set(replay_markers(arrays, 4.0).markers) == {("zones", 0)}  # DELETEALL in one namespace
    assert replay_markers(arrays).markers == {}  # DELETEALL with no namespace: everything
    assert replay_markers(arrays[:2]).time == 2.0
    expiring = [SimpleNamespace(markers=[_at(1, "a", 0, lifetime=_v(sec=1, nanosec=0)), _at(3, "b", 0)])]
    assert set(replay_markers(expiring).markers) == {("b", 0)}  # stamped 1 s + lifetime 1 s < 3 s
    assert set(replay_markers(expiring, 1.5).markers) == {("a", 0)}


# --------------------------------------------------------------------------------------------
# (b) the markers of a recorded run

@pytest.fixture(scope="module")
def recording(tmp_path_factory, tiny_run) -> Path:
    """A short recorded graph run: n = 10, k = 4, 8 decision steps, kinematic world at 4x real time."""
    pytest.importorskip("rclpy", reason="recording a graph run needs rclpy (the `ros` extra or a ROS 2 install)")
    pytest.importorskip("mcap")
    pytest.importorskip("rosbags")
    from altmarl_ros.bringup.launch_plan import LaunchConfig
    from altmarl_ros.bringup.system import run_system

    base = tmp_path_factory.mktemp("rviz")
    policy = tiny_run(K)  # conftest's: the paper's start alone, one round
    (base / "world.yaml").write_text(WORLD)
    with pytest.MonkeyPatch.context() as env:  # a private DDS domain on localhost only
        env.setenv("ROS_DOMAIN_ID", str(random.randint(101, 200)))
        env.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        env.setenv("ROS_LOCALHOST_ONLY", "1")
        env.setenv("ROS_LOG_DIR", str(base / "ros_log"))
        config = LaunchConfig(n=N, k=K, policy=str(policy), world_config=str(base / "world.yaml"),
                              speedup=4.0, decision_steps=STEPS, robots_per_process=N, seed=3,
                              record=str(base / "rec"), params_file=str(REPO / "config" / "altmarl.yaml"))
        run = run_system(config, base / "logs", timeout=120)
    assert not run.died, f"processes died: {run.died}"
    # every step ran (the coordinator's last statistics are acknowledged before it exits); the recorder is one
    # of the listeners the first step waits for, the passive monitor is not, so it may join a few steps late
    assert run.log.last_stats["steps"] == STEPS
    return base / "rec"


def _read(recording: Path, topic: str) -> list[tuple[int, object]]:
    from rosbags.highlevel import AnyReader

    with AnyReader([recording]) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:  # (rosbags reads every topic when given none)
            return []
        return [(t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(connections=connections)]


def _frames(recording: Path) -> set[str]:
    """The frames RViz can resolve in this run: the fixed frame, and every frame on /tf (if it was recorded)."""
    frames = {topics.WORLD_FRAME}
    for _, msg in _read(recording, "/tf"):
        for t in msg.transforms:
            frames |= {t.header.frame_id, t.child_frame_id}
    return frames


def test_recorded_markers_meet_the_rviz_contract(recording):
    arrays = [msg for _, msg in _read(recording, topics.MARKERS)]
    frames = _frames(recording)
    problems = sorted({p for msg in arrays for p in check_marker_array(msg, frames)})
    assert problems == [], "\n".join(problems)
    markers = [m for msg in arrays for m in msg.markers]
    # not vacuous: both publishers' markers, every step's coordinator markers, the fixed frame in use
    assert {m.header.frame_id for m in markers} == {topics.WORLD_FRAME}
    namespaces = {m.ns for m in markers}
    assert namespaces == {"zones", "robots", "sampled", "leader", "status"}
    status = [m for m in markers if m.ns == "status"]
    assert STEPS - 2 <= len(status) <= STEPS
    robots = [m for m in markers if m.ns == "robots"]
    assert len(robots) > 2 * STEPS and all(len(m.points) == len(m.colors) == N for m in robots)
    # the sampled rings are the robots that replied, as many as the status line says
    replied = [int(re.search(r"replied (\d+)", m.text).group(1)) for msg in arrays for m in msg.markers
               if m.ns == "status"]
    assert [len(m.points) for m in markers if m.ns == "sampled"] == replied and max(replied) == K
    assert len({m.id for m in markers if m.ns == "zones"}) == 5


def test_rviz_config_matches_the_recorded_markers_and_their_qos(recording):
    from mcap.reader import make_reader

    config = _rviz_config()
    arrays = [msg for _, msg in _read(recording, topics.MARKERS)]
    recorded = {m.ns for msg in arrays for m in msg.markers}
    assert set(_marker_display(config)["Namespaces"]) == recorded  # no stale and no missing namespace
    with open(recording / "run.mcap", "rb") as handle:
        channels = {c.topic: c for c in make_reader(handle).get_summary().channels.values()}
    for name, (topic, qos) in display_topics(config).items():
        assert topic in channels, f"display {name}: {topic} was not recorded"
        offered = yaml.safe_load(channels[topic].metadata["offered_qos_profiles"])
        # the publishers the recorder had discovered when it subscribed: the sim's, and the coordinator's
        # unless it started later (both offer the same profile: reliable, volatile)
        assert 1 <= len(offered) <= 2
        assert qos_compatible(qos, offered) == [], f"display {name}"


# --------------------------------------------------------------------------------------------
# the picture of the recorded markers

def _status_steps(recording: Path) -> list[tuple[float, int]]:
    """(stamp, step) of every status text the coordinator published."""
    out = []
    for _, msg in _read(recording, topics.MARKERS):
        for m in msg.markers:
            if m.ns == "status":
                out.append((stamp_seconds(m.header.stamp), int(re.search(r"step (\d+)", m.text).group(1))))
    return out


def test_render_draws_the_recorded_markers_where_and_as_rviz_would(recording, tmp_path):
    import matplotlib.image

    from altmarl_ros.viz_render import render_markers_png

    steps = _status_steps(recording)
    stamp, step = steps[len(steps) // 2]  # a decision step: the sampled rings are where the replies said
    picture = render_markers_png(recording, tmp_path / "swarm.png", time=stamp)
    assert picture.step == step and picture.time == stamp
    image = matplotlib.image.imread(picture.path)
    assert image.shape[:2] == (800, 800)
    arrays = [msg for _, msg in _read(recording, topics.MARKERS)]
    scene = replay_markers(arrays, stamp)  # the same replay on rosbags' decoding of the file
    assert picture.namespaces == scene.by_namespace()
    assert set(scene.by_namespace()) == {"zones", "robots", "sampled", "leader", "status"}
    robots, sampled = scene.markers[("robots", 0)], scene.markers[("sampled", 0)]
    leader, status = scene.markers[("leader", 0)].pose.position, scene.markers[("status", 0)].pose.position
    covered = [(p.x, p.y, 0.5 * sampled.scale.x) for p in sampled.points] + [(leader.x, leader.y, 0.2)]
    checked = 0
    for point, colour in zip(robots.points, robots.colors, strict=True):
        if any(math.hypot(point.x - x, point.y - y) < r + robots.scale.x for x, y, r in covered) \
                or abs(point.y - status.y) < 0.4:  # under the sampled ring, the leader or the status text
            continue
        pixel = image[picture.pixel(point.x, point.y)]
        assert pixel[:3] == pytest.approx([colour.r, colour.g, colour.b], abs=2 / 255), (point, pixel)
        checked += 1
    print(f"{checked} of {N} robots checked pixel by pixel")
    assert checked >= 2
    # a sampled robot is under a translucent dark ring: darker than its own colour, not background
    x, y = sampled.points[0].x, sampled.points[0].y
    assert 0.0 < image[picture.pixel(x, y)][:3].sum() < 3.0


def test_render_default_is_the_end_of_the_recording_and_bad_times_fail(recording, tmp_path):
    from altmarl_ros.recording import RecordingError
    from altmarl_ros.viz_render import render_markers_png

    steps = _status_steps(recording)
    last = render_markers_png(recording, tmp_path / "end.png")
    assert last.step == max(step for _, step in steps) and last.time >= max(stamp for stamp, _ in steps)
    first = render_markers_png(recording / "run.mcap", tmp_path / "first.png", time=steps[0][0])
    assert first.step == steps[0][1]
    with pytest.raises(RecordingError, match="no markers stamped at or before t = 0.001 s"):
        render_markers_png(recording, tmp_path / "none.png", time=0.001)
    with pytest.raises(RecordingError, match="has no topic /nothing"):
        render_markers_png(recording, tmp_path / "none.png", topic="/nothing")


def test_altmarl_render_command(recording, tmp_path, capsys):
    from altmarl_ros.cli import build_parser, main

    assert "render" in build_parser().format_help()
    out = tmp_path / "cli.png"
    assert main(["render", str(recording), "--png", str(out), "--size", "400"]) == 0
    assert "wrote" in capsys.readouterr().out
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[:2] == (400, 400) and os.path.getsize(out) > 5000
    assert main(["render", str(tmp_path / "missing"), "--png", str(tmp_path / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
