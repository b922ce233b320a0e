"""ros2 launch altmarl_ros sim.launch.py n:=20 k:=4 policy:=runs/zones-k4 [backend:=pybullet] [rviz:=true]

Thin on purpose: the node list comes from altmarl_ros.bringup.launch_plan.build_launch_plan, the
tested function that `altmarl sim` also uses.
"""

from altmarl_ros.bringup.launch_description import make_launch_description


def generate_launch_description():
    return make_launch_description()
