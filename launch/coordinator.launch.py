"""ros2 launch altmarl_ros coordinator.launch.py n:=12 k:=4 policy:=/path/to/runs/zones-k4 [learn:=true]

Only the coordinator, e.g. on the base station while each robot runs robot.launch.py on its own
computer. It uses wall time (use_sim_time:=false) unless told otherwise: nothing in this launch
publishes /clock.
"""

from altmarl_ros.bringup.launch_description import make_launch_description


def generate_launch_description():
    return make_launch_description(only=("coordinator_node",), defaults={"use_sim_time": "false"})
