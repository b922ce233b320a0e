"""fleet_node: robots [first_robot, last_robot) as separate nodes on one executor (see robot_node)."""

from altmarl_ros.nodes.robot_node import main_fleet as main  # noqa: F401  (the console script's entry)

if __name__ == "__main__":
    raise SystemExit(main())
