"""ament_python package that also installs with plain `pip install -e .`."""

import runpy
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "altmarl_ros"
# the node executables, from the one list the supervisor and the launch plan use too
EXECUTABLES = runpy.run_path(str(Path(__file__).parent / PACKAGE / "bringup" / "executables.py"))

# ROS 2 Kilted wheels from PyPI, for machines without a ROS 2 install (CI, laptops).
# Never install these on a ROS 2 machine: they would shadow the system rclpy.
ROS_WHEELS = [
    "ros-rclpy[fastrtps]==9.1.2",
    "ros-std-msgs",
    "ros-geometry-msgs",
    "ros-nav-msgs",
    "ros-visualization-msgs",
    "ros-rosgraph-msgs",
]
# MCAP writing for the recorder node (rosbag2-compatible); safe next to a system ROS 2.
RECORDING = ["mcap>=1.6.0"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    python_requires=">=3.10",
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/urdf", glob("urdf/*.urdf")),
    ],
    # torch is pinned by the install instructions (torch==2.13.0 first, CPU wheel), not here:
    # an open range here would let pip pull a CUDA build.
    # numba compiles the G-LEARN kernels (marl/count_kernels.py); without it a numpy path gives the same draws.
    install_requires=["numpy>=1.24", "scipy>=1.10", "PyYAML>=6", "matplotlib>=3.6", "tqdm>=4.60", "numba>=0.59"],
    extras_require={
        "ros": ROS_WHEELS + RECORDING,
        "record": RECORDING,
        "sim": ["pybullet>=3.2"],
        "deep": ["torch==2.13.0"],
        # `altmarl sweep --ray ADDRESS|local`: sweep jobs on a Ray cluster (local processes need nothing)
        "cluster": ["ray>=2.9"],
        # independent MCAP readers, used by the tests to read recordings back
        "test": ["pytest>=7", "hypothesis>=6", "ruff>=0.5", "mcap-ros2-support>=0.6.0", "rosbags>=0.11"],
    },
    zip_safe=True,
    maintainer="altmarl_ros maintainers",
    maintainer_email="maintainers@altmarl.invalid",
    description="ALTERNATING-MARL (mean-field subsampling) for ROS 2 robot swarms",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "altmarl = altmarl_ros.cli:main",
            *EXECUTABLES["console_scripts"](),
        ],
    },
)
