"""ros2 launch altmarl_ros hardware.launch.py n:=12 k:=4 policy:=/path/to/runs/zones-k4 world_config:=config/world.yaml
       pose_topic:=pose pose_type:=pose_stamped cmd_topic:=cmd_vel

Real robots: no sim node. Each robot's driver publishes its pose under robot_<i>/ (nav_msgs/Odometry,
or geometry_msgs/PoseStamped from motion capture) and takes geometry_msgs/Twist there; the leader
likewise under leader/. The zone map (ring, zone radius, zones) comes from world_config.
"""

from altmarl_ros.bringup.launch_description import make_launch_description


def generate_launch_description():
    return make_launch_description(fixed={"hardware": "true", "backend": "kinematic", "link": "per_robot"})
