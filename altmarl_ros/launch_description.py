"""The LaunchDescription behind launch/*.launch.py: declared arguments -> build_launch_plan -> Nodes.

Needs `launch` and `launch_ros` (a ROS 2 install); everything it decides is in
`launch_plan`, which is tested without them.
"""

from __future__ import annotations

from altmarl_ros.launch_plan import (
    LAUNCH_ARGUMENTS,
    PACKAGE,
    LaunchConfig,
    build_launch_plan,
    config_from_strings,
    select_nodes,
)


def _default_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def make_launch_description(fixed: dict[str, str] | None = None, only: tuple[str, ...] = ()):
    """Launch arguments for every LaunchConfig field not in `fixed`; `only` keeps those executables."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    fixed = dict(fixed or {})
    defaults = LaunchConfig()
    names = [name for name in LAUNCH_ARGUMENTS if name not in fixed]

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in names}
        rviz = values.pop("rviz", "false").lower() in ("true", "1")
        config = config_from_strings({**values, **fixed})
        plan = select_nodes(build_launch_plan(config), only)
        actions = [Node(package=PACKAGE, executable=spec.executable, arguments=spec.ros_args(), output="screen")
                   for spec in plan]
        if rviz:
            from ament_index_python.packages import get_package_share_directory

            rviz_config = f"{get_package_share_directory(PACKAGE)}/config/altmarl.rviz"
            actions.append(Node(package="rviz2", executable="rviz2", arguments=["-d", rviz_config],
                                parameters=[{"use_sim_time": config.use_sim_time and not config.hardware}]))
        return actions

    arguments = [DeclareLaunchArgument(name, default_value=_default_text(getattr(defaults, name, False)),
                                       description=LAUNCH_ARGUMENTS[name]) for name in names]
    return LaunchDescription([*arguments, OpaqueFunction(function=nodes)])
