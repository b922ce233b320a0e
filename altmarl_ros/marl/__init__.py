"""The algorithm: games, population simulators, G-LEARN, L-LEARN, alternation.

Pure numpy; nothing here imports ROS 2 or PyBullet.
"""
