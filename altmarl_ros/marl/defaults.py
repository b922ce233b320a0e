"""The names and defaults that the command line shows, in a module that imports nothing.

`altmarl --help` must answer without numpy, scipy, numba or torch and still show the real defaults, so
each such value has its one home here: the module it configures (task registry, starts, evaluation
protocol, memory budget, alternation, DQN, PPO) takes it from here, and so do the parsers.
"""

TASK_NAMES = ("federated", "warehouse", "zones")  # what tasks/__init__.py registers (checked at its import)
START_NAMES = ("uniform", "static", "greedy")  # the alternation's starting pairs (marl/starts.py)
MEMORY_BUDGET_ENV = "ALTMARL_MEMORY_BUDGET"  # bytes a command and its children may use (marl/checkpoint.py)

# the evaluation protocol (marl/evaluation.py): seeds 0..14, 50 rollouts each
DEFAULT_EVAL_SEEDS = tuple(range(15))
DEFAULT_ROLLOUTS = 50

# AlternationConfig (marl/alternation.py)
ROUNDS = 3
GLEARN_M = 8  # next-state samples per Q entry (sampled G-LEARN)
GLEARN_TOL = 0.01  # G-LEARN stopping tolerance on |Q - Q*|
LOCAL_METHOD = "exact"
ROUND_EVAL_SEEDS = 5  # per-round value: seeds 0..ROUND_EVAL_SEEDS-1
ROUND_EVAL_ROLLOUTS = 50

# the deep learners (marl/deep/dqn.py, marl/deep/ppo.py)
DQN_STEPS = 2500  # env steps per global best response
PPO_ITERATIONS = 30  # PPO iterations per local best response
