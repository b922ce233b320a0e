"""rclpy nodes: each wires an agent from `altmarl_ros.agents` (or the world) to topics.

Importing this package needs rclpy; nothing else in altmarl_ros does.
"""
