"""ros2 launch altmarl_ros coordinator.launch.py n:=20 k:=4 policy:=runs/zones-k4 [learn:=true]

Only the coordinator, e.g. on the base station while the robots run their own robot_node.
"""

from altmarl_ros.launch_description import make_launch_description


def generate_launch_description():
    return make_launch_description(only=("coordinator_node",))
