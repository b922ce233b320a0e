"""Bringing a node graph up: the launch plan, its launch description, the process supervisor, the passive
monitor and `run_system`, which `altmarl sim`, the integration tests and the graph benchmarks share.

Nothing here decides anything the robots or the coordinator do; it only says which processes run with which
parameters, starts and stops them, and watches what they publish.
"""
