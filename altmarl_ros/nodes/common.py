"""What every node shares: loading the policy and world from parameters, and spinning with clean shutdown."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.nodes.params import defaults as params_defaults
from altmarl_ros.sim.config import WorldConfig
from altmarl_ros.tasks.config import config_from_mapping, load_yaml

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble: the same classes under their earlier module name
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

# Event callbacks for the many per-robot publishers and subscriptions (sim, fleets, monitor): none.
# By default rclpy gives every publisher and subscription two QoS event handlers (incompatible QoS,
# incompatible type) that only log a warning; each is a waitable the executor re-adds to its wait set on
# every wait, which at a thousand topics costs more than the messages themselves.
QUIET_PUB = PublisherEventCallbacks(use_default_callbacks=False)
QUIET_SUB = SubscriptionEventCallbacks(use_default_callbacks=False)


def drop_event_handlers(node: Node) -> None:
    """Remove the QoS event handlers of a node's publishers (e.g. the /parameter_events one rclpy creates)."""
    for publisher in node.publishers:
        for handler in publisher.event_handlers:
            node.remove_waitable(handler)
            handler.destroy()
        publisher.event_handlers = []


def matched_publishers(node: Node, subscription) -> int:
    """Publishers matched with a subscription; on Humble (no Subscription.get_publisher_count) those on its topic."""
    try:
        return subscription.get_publisher_count()
    except AttributeError:
        return node.count_publishers(subscription.topic_name)


def declare(node: Node, params: type, dynamic: Iterable[str] = (),
            on_change: Callable[[str, object], str | None] | None = None) -> dict:
    """Declare the fields of a `nodes.params` class (types from the defaults) and return their values.

    Every parameter is read-only (`ros2 param set` is refused) unless it is in `dynamic`: a node
    reads most of its parameters once, and a set that reports success but changes nothing misleads
    an operator. A dynamic change is passed to `on_change(name, value)`, which applies it and
    returns None, or returns why the value is refused.
    """
    dynamic = set(dynamic)
    defaults = params_defaults(params)
    values = {name: node.declare_parameter(name, default, ParameterDescriptor(read_only=name not in dynamic)).value
              for name, default in defaults.items()}
    if dynamic and on_change is not None:
        def apply(parameters) -> SetParametersResult:
            for parameter in parameters:
                if parameter.name not in dynamic:
                    continue  # declaration-time overrides and rclpy's own parameters
                expected = type(defaults[parameter.name])
                value = parameter.value
                if expected is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                if type(value) is not expected:
                    return SetParametersResult(successful=False,
                                               reason=f"{parameter.name} must be a {expected.__name__}")
                reason = on_change(parameter.name, value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
                values[parameter.name] = value
            return SetParametersResult(successful=True)

        node.add_on_set_parameters_callback(apply)
    return values


def wall_timer(node: Node, period: float, callback: Callable[[], None]):
    """A timer on the steady clock: it fires even while a sim-time clock has not started."""
    return node.create_timer(period, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))


def warn_without_clock(node: Node, after: float = 5.0) -> None:
    """Say once, after `after` wall seconds, that use_sim_time is on but no /clock has arrived.

    With use_sim_time and no /clock every ROS timer of the node stands still, silently; a node
    started on hardware or alone (without the sim) needs use_sim_time:=false.
    """
    if not node.get_parameter("use_sim_time").value:
        return
    timer = None

    def check() -> None:
        timer.cancel()
        if node.get_clock().now().nanoseconds == 0:
            node.get_logger().warning(
                f"use_sim_time is true but nothing arrived on /clock in {after:.0f} s: this node waits for "
                "simulated time. Start the sim node, or pass use_sim_time:=false (real robots, a base station "
                "without the sim).")

    timer = wall_timer(node, after, check)


def load_world(path: str, zones: int, **overrides) -> WorldConfig:
    values = dict(load_yaml(path).get("world", {})) if path else {}
    values.update(overrides)
    values["zones"] = zones
    return config_from_mapping(WorldConfig, values)


_phase = {"now": "starting"}  # starting | spinning | stopping: what a SIGINT means in this process


def _on_sigint(signum, frame) -> None:
    if _phase["now"] == "starting":
        raise KeyboardInterrupt  # nothing runs yet: stop at once
    # spinning: rclpy's handler, which called this one, has shut the context down and the executor returns;
    # stopping: the teardown takes milliseconds and runs to its end (SIGTERM / SIGKILL still stop a hang)


def run(make_nodes: Callable[[], list[Node]], args: list[str] | None = None) -> int:
    """rclpy.init, build the nodes, spin one executor until Ctrl-C / SIGTERM, then shut down cleanly."""
    # Ctrl-C stops the executor through rclpy's own handler (it shuts the context down, then calls the
    # handler installed before it). Once nodes spin, that earlier handler must not raise KeyboardInterrupt:
    # raised between any two bytecodes, it can cut a callback in half (a recorder's half-written MCAP
    # record) or the teardown (a terminal and `ros2 launch` may both send SIGINT).
    signal.signal(signal.SIGINT, _on_sigint)
    rclpy.init(args=args if args is not None else sys.argv)
    nodes: list[Node] = []
    code = 0
    try:
        nodes = make_nodes()
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        _phase["now"] = "spinning"
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # rclpy can fail to take a message while the context is being shut down: still a clean stop
    except AltmarlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    finally:
        _phase["now"] = "stopping"
        for node in nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
