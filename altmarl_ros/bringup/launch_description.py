"""The LaunchDescription behind launch/*.launch.py: declared arguments -> build_launch_plan -> Nodes.

Needs `launch` and `launch_ros` (a ROS 2 install); everything it decides is in
`launch_plan`, which is tested without them. The whole plan is validated before
the first action is returned, so a bad argument (or rviz:=true without rviz2)
stops the launch with one clear line and no process started.
"""

from __future__ import annotations

from altmarl_ros.bringup.launch_plan import (
    LAUNCH_ARGUMENTS,
    PACKAGE,
    LaunchConfig,
    LaunchError,
    build_launch_plan,
    config_from_strings,
    package_share,
    select_nodes,
)
from altmarl_ros.security import security_env


def _default_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def rviz_executable_missing() -> str | None:
    """Why rviz2 cannot start here (None if it can)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return ("rviz:=true needs RViz 2, and package 'rviz2' is not installed in this ROS 2 environment "
                "(install ros-$ROS_DISTRO-rviz2, or leave rviz:=false and run rviz2 on another computer "
                "of the same ROS_DOMAIN_ID with -d <share>/altmarl_ros/config/altmarl.rviz)")
    return None


def make_launch_description(fixed: dict[str, str] | None = None, only: tuple[str, ...] = (),
                            defaults: dict[str, str] | None = None):
    """Launch arguments for every LaunchConfig field not in `fixed`; `only` keeps those executables;
    `defaults` changes an argument's default for this launch file (e.g. use_sim_time without the sim)."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    fixed = dict(fixed or {})
    base = LaunchConfig()
    default_texts = {name: _default_text(getattr(base, name)) for name in LAUNCH_ARGUMENTS}
    default_texts.update(defaults or {})
    names = [name for name in LAUNCH_ARGUMENTS if name not in fixed]

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in names}
        config = config_from_strings({**values, **fixed})
        plan = select_nodes(build_launch_plan(config), only)
        if not plan:
            raise LaunchError(f"nothing to launch: no {' or '.join(only)} in this configuration"
                              + ("; give robot_id:=<0..n-1>" if "robot_node" in only else ""))
        if config.rviz:
            missing = rviz_executable_missing()
            if missing:
                raise LaunchError(missing)
        env = security_env(config.security) if config.security else {}
        actions = [Node(package=PACKAGE, executable=spec.executable, arguments=spec.ros_args(), output="screen",
                        additional_env=env) for spec in plan]
        if config.rviz:
            actions.append(Node(package="rviz2", executable="rviz2",
                                arguments=["-d", str(package_share() / "config" / "altmarl.rviz")],
                                parameters=[{"use_sim_time": config.use_sim_time and not config.hardware}]))
        return actions

    arguments = [DeclareLaunchArgument(name, default_value=default_texts[name], description=LAUNCH_ARGUMENTS[name])
                 for name in names]
    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])
