"""`altmarl keystore`: the SROS2 keystore and enclaves of a launch plan (flags and handler: altmarl_ros.security)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `keystore` subparser; altmarl_ros.security owns its flags and its handler (run_from_arguments)."""
    from altmarl_ros import security

    p = sub.add_parser("keystore", parents=[common], help="create the SROS2 keystore and enclaves a launch needs",
                       description="Create (or complete) an SROS2 keystore with one enclave per process of the "
                       "launch plan these arguments give, for security:=KEYSTORE (ros2 launch) or altmarl sim "
                       "--security KEYSTORE. Needs `ros2 security` (sros2, part of any ROS 2 install).")
    security.add_arguments(p)
    p.set_defaults(func=security.run_from_arguments)
