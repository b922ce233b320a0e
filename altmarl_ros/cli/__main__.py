"""`python -m altmarl_ros.cli`: the `altmarl` command (the fault-injection benchmark starts it this way)."""

import sys

from altmarl_ros.cli import main

sys.exit(main())
