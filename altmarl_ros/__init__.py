"""altmarl_ros: ALTERNATING-MARL (mean-field subsampling) for ROS 2 robot swarms."""

__version__ = "0.1.0"
