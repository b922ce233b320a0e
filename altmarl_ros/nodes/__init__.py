"""rclpy nodes: each wires an agent from `altmarl_ros.agents` (or the world) to topics.

The node modules need rclpy; `params` (every node's parameters) and `topics` (the wire formats) do not,
and nothing outside `nodes/` and `bringup/` imports rclpy.
"""
