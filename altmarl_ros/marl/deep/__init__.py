"""Function approximation for ALTERNATING-MARL (torch): DQN for G-LEARN, PPO for L-LEARN."""
