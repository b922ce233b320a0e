"""ros2 launch altmarl_ros robot.launch.py robot_id:=3 n:=12 k:=4 policy:=/path/to/runs/zones-k4
       [pose_topic:=/odom cmd_topic:=/cmd_vel] [pose_type:=pose_stamped]

One real robot on its own computer: its robot_node (local policy, go-to controller) beside the
robot's driver. Relative topics live under robot_<id>/; absolute ones (/odom, /cmd_vel of a
TurtleBot-style base) are used as they are. Wall time; the base station runs coordinator.launch.py.
"""

from altmarl_ros.bringup.launch_description import make_launch_description


def generate_launch_description():
    return make_launch_description(fixed={"hardware": "true", "link": "per_robot"}, only=("robot_node",))
