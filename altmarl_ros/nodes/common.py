"""What every node shares: loading the policy and world from parameters, and spinning with clean shutdown."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.sim.config import WorldConfig
from altmarl_ros.tasks.config import config_from_mapping, load_yaml
from altmarl_ros.training import TrainedPolicies, load_trained

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


def declare(node: Node, defaults: dict) -> dict:
    """Declare parameters with defaults (types from the defaults) and return their values."""
    return {name: node.declare_parameter(name, default).value for name, default in defaults.items()}


def load_world(path: str, zones: int, **overrides) -> WorldConfig:
    values = dict(load_yaml(path).get("world", {})) if path else {}
    values.update(overrides)
    values["zones"] = zones
    return config_from_mapping(WorldConfig, values)


def load_policy(path: str, zones: int | None = None) -> TrainedPolicies:
    return load_trained(path, expect_task="zones", expect_zones=zones)


def run(make_nodes: Callable[[], list[Node]], args: list[str] | None = None) -> int:
    """rclpy.init, build the nodes, spin one executor until Ctrl-C / SIGTERM, then shut down cleanly."""
    rclpy.init(args=args if args is not None else sys.argv)
    nodes: list[Node] = []
    code = 0
    try:
        nodes = make_nodes()
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
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
        for node in nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
