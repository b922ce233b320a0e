"""The decision logic of each ROS 2 node as plain classes that never touch rclpy."""
