"""The physical swarm world (TASKS.md section 4): arena, zones, robots, two backends.

Usable without ROS: the ROS 2 sim node wraps exactly this module.
"""
