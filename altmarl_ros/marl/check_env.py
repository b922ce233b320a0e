"""`check_env`: does a game or environment keep the contract the learners rely on?

In the style of Stable-Baselines3's ``env_checker``: hand it what you built
and it either returns quietly or raises an `EnvCheckError` (a
`GameValidationError`) that names the call, what was wrong and what is valid.

* A `TabularGame` (what G-LEARN, L-LEARN and the count simulators use): its
  arrays are re-validated by the same checks `marl/game.py` runs on
  construction (shapes consistent, probabilities finite, non-negative and
  summing to 1 over s', rewards finite, init_global a distribution,
  init_local_alpha > 0, gamma in (0, 1), n and horizon >= 1), so a game whose
  arrays were swapped or edited after construction is caught too; then its
  env form (`TabularPopulationEnv`, what the deep learners see) is checked.
* A `PopulationEnv` (`marl/envs.py`), through exactly the calls the deep
  learners and `marl.rollouts` make: sizes (n, gamma, horizon, action and
  feature counts, global_obs_dim = global_feature_dim + num_bins); check_k
  accepting 1 <= k <= n and refusing the rest; reset, observe (shape
  (B, global_obs_dim), float32, finite, the histogram part non-negative and
  summing to 1), mode (a bin index), agents_reset, agent_features (shape
  (B, m, local_feature_dim), finite floats), agents_step (next agents and
  finite r_l of shape (B, m), leaving the population state untouched: the
  rollouts step the population with it afterwards) and step (next state and a
  finite system reward of shape (B,)), for a whole episode with every global
  and local action index used; states in range (a tabular env's s_g in
  [0, G) and its counts >= 0 summing to n; a continuous env's states within
  its `state_bounds` when it declares them, finite in any case); and
  determinism: the same seed gives the same episode, call by call.

The episode uses uniform robots (`marl.baselines.UniformLocalPolicy`), so no
torch is needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from altmarl_ros.marl.baselines import UniformLocalPolicy
from altmarl_ros.marl.envs import OBSERVATIONS, TabularPopulationEnv
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame

HISTOGRAM_ATOL = 1e-5
ENV_METHODS = ("reset", "observe", "global_features", "histogram", "mode", "prepare_local", "step", "agents_reset",
               "agent_features", "agents_step", "check_k")
SIZES = ("num_global_actions", "num_local_actions", "num_bins", "global_feature_dim", "local_feature_dim")


class EnvCheckError(GameValidationError):
    """A game or environment breaks the contract the learners rely on (the message says what and what is valid)."""


def check_env(env_or_game: Any, *, seed: int = 0, batch: int = 4, steps: int | None = None, k: int | None = None,
              agents: int = 3) -> None:
    """Check a `TabularGame` (its arrays, then its env form) or a `PopulationEnv`; raise EnvCheckError if broken.

    seed: the episode's seed (run twice, for determinism); batch: episodes at once; steps: steps per episode
    (default: the horizon); k: the coordinator's subsample (default min(n, 5)); agents: representative robots
    per episode.
    """
    if _looks_like_game(env_or_game):
        game = check_game(env_or_game)
        check_population_env(TabularPopulationEnv(game), seed=seed, batch=batch, steps=steps, k=k, agents=agents)
    elif all(hasattr(env_or_game, name) for name in ("reset", "step")):
        check_population_env(env_or_game, seed=seed, batch=batch, steps=steps, k=k, agents=agents)
    else:
        raise EnvCheckError(f"check_env needs a TabularGame or a PopulationEnv (marl/envs.py), got "
                            f"{type(env_or_game).__name__}")


# --- tabular games -------------------------------------------------------------------------------------------------
def _looks_like_game(obj: Any) -> bool:
    return isinstance(obj, TabularGame) or (hasattr(obj, "global_transition") and hasattr(obj, "local_transition"))


def check_game(game: Any) -> TabularGame:
    """Re-run `TabularGame`'s own validation on the game's current arrays; return the validated game."""
    names = [f.name for f in dataclasses.fields(TabularGame)]
    missing = [name for name in names if name != "config" and not hasattr(game, name)]
    label = f"game {getattr(game, 'name', '?')!r}"
    if missing:
        raise EnvCheckError(f"{label} lacks {missing}; a TabularGame has {names} (layouts in marl/game.py)")
    if not isinstance(game.name, str) or not game.name:
        raise EnvCheckError(f"{label}: name must be a non-empty string (the task name), got {game.name!r}")
    config = getattr(game, "config", {})
    if not isinstance(config, dict):
        raise EnvCheckError(f"{label}: config must be a dict (it is saved with the run), got {type(config).__name__}")
    try:
        return TabularGame(**{name: getattr(game, name, {}) for name in names})
    except GameValidationError as error:
        raise EnvCheckError(f"{label}: {error}") from error


# --- population environments ---------------------------------------------------------------------------------------
def check_population_env(env: Any, *, seed: int = 0, batch: int = 4, steps: int | None = None,
                         k: int | None = None, agents: int = 3) -> None:
    """Check a `PopulationEnv` through the calls the deep learners and rollouts make (module docstring)."""
    label = f"env {getattr(env, 'name', type(env).__name__)!r}"
    _check_interface(env, label)
    k = min(env.n, 5) if k is None else k
    _check_k(env, label, k)
    steps = env.horizon if steps is None else steps
    if batch < 1 or agents < 1 or steps < 1:
        raise GameValidationError(f"check_env needs batch, agents and steps >= 1, got {batch}, {agents}, {steps}")
    first = _episode(env, label, seed, batch, steps, k, agents)
    second = _episode(env, label, seed, batch, steps, k, agents)
    for (call, a), (_, b) in zip(first, second, strict=True):
        if np.shape(a) != np.shape(b) or not np.array_equal(a, b, equal_nan=True):
            raise EnvCheckError(
                f"{label} is not deterministic under the same seed: {call} differs between two episodes from "
                f"np.random.default_rng({seed}); every random draw must come from the rng the env is given (no "
                "global np.random, no generator of its own, nothing carried over from an earlier reset)")


def _check_interface(env: Any, label: str) -> None:
    missing = [name for name in ENV_METHODS if not callable(getattr(env, name, None))]
    if missing:
        raise EnvCheckError(f"{label} lacks the methods {missing}; a PopulationEnv (marl/envs.py) has {ENV_METHODS}")
    name = getattr(env, "name", None)
    if not isinstance(name, str) or not name:
        raise EnvCheckError(f"{label}: name must be a non-empty string (the task name), got {name!r}")
    for name in ("n", "horizon", *SIZES):
        value = getattr(env, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise EnvCheckError(f"{label}: {name} must be an integer >= 1, got {value!r}")
    gamma = getattr(env, "gamma", None)
    if isinstance(gamma, bool) or not isinstance(gamma, (float, int, np.floating)) or not 0.0 < gamma < 1.0:
        raise EnvCheckError(f"{label}: gamma must be a number in the open interval (0, 1), got {gamma!r}")
    obs_dim = getattr(env, "global_obs_dim", None)
    if obs_dim != env.global_feature_dim + env.num_bins:
        raise EnvCheckError(f"{label}: global_obs_dim is {obs_dim!r}, it must be global_feature_dim + num_bins = "
                            f"{env.global_feature_dim} + {env.num_bins}")
    if not isinstance(getattr(env, "config", None), dict):
        raise EnvCheckError(f"{label}: config must be a dict (it is saved with the run), got "
                            f"{type(getattr(env, 'config', None)).__name__}")
    bounds = getattr(env, "state_bounds", None)
    if bounds is not None:
        if (len(bounds) != 2 or not all(np.isfinite(b) for b in bounds)) or not bounds[0] <= bounds[1]:
            raise EnvCheckError(f"{label}: state_bounds must be None or finite (low, high) with low <= high, "
                                f"got {bounds!r}")
    game = getattr(env, "game", None)
    if isinstance(game, TabularGame):
        expected = {"n": game.n, "horizon": game.horizon, "num_global_actions": game.num_global_actions,
                    "num_local_actions": game.num_local_actions, "num_bins": game.num_local_states}
        for name, value in expected.items():
            if getattr(env, name) != value:
                raise EnvCheckError(f"{label}: {name} is {getattr(env, name)}, its game has {value}")


def _check_k(env: Any, label: str, k: int) -> None:
    try:
        env.check_k(k)
    except GameValidationError as error:
        raise EnvCheckError(f"{label}: check_k refused k={k} ({error}); valid: 1 <= k <= n={env.n}") from error
    for bad in (0, env.n + 1):
        try:
            env.check_k(bad)
        except GameValidationError:
            continue
        raise EnvCheckError(f"{label}: check_k accepted k={bad}; it must raise GameValidationError unless "
                            f"1 <= k <= n={env.n}")


def _call(label: str, call: str, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), with an exception of the env turned into an EnvCheckError that names the call."""
    try:
        return fn(*args)
    except EnvCheckError:
        raise
    except Exception as error:
        raise EnvCheckError(f"{label}: {call} raised {type(error).__name__}: {error}") from error


def _array(label: str, call: str, value: Any, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """`value` as an array of `shape`, of `kind` ("integer", "float" or "real"), finite."""
    array = np.asarray(value)
    if array.shape != shape:
        raise EnvCheckError(f"{label}: {call} has shape {array.shape}, expected {shape}")
    ok = {"integer": np.issubdtype(array.dtype, np.integer),
          "float": np.issubdtype(array.dtype, np.floating),
          "real": np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)}[kind]
    if not ok:
        raise EnvCheckError(f"{label}: {call} has dtype {array.dtype}, expected {kind} numbers")
    if not np.all(np.isfinite(array)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise EnvCheckError(f"{label}: {call} contains NaN or inf at {where}; it must hold finite numbers")
    return array


def _in_range(label: str, call: str, array: np.ndarray, low: float, high: float, closed: bool) -> None:
    bad = (array < low) | ((array > high) if closed else (array >= high))
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        interval = f"[{low:g}, {high:g}]" if closed else f"[{low:g}, {high:g})"
        raise EnvCheckError(f"{label}: {call} is out of range: {array[where].item()} at {where}; valid: {interval}")


def _check_state(env: Any, label: str, call: str, state: Any, batch: int) -> list[tuple[str, np.ndarray]]:
    """A state from reset or step: shapes, dtypes and ranges; returns its arrays for the determinism check."""
    if not hasattr(state, "global_state") or not hasattr(state, "population"):
        raise EnvCheckError(f"{label}: {call} returned {type(state).__name__}; it must return an EnvState "
                            "(global_state, population)")
    game = getattr(env, "game", None)
    if isinstance(game, TabularGame):
        g = _array(label, f"{call} global_state", state.global_state, (batch,), "integer")
        _in_range(label, f"{call} global_state", g, 0, game.num_global_states, closed=False)
        counts = _array(label, f"{call} population (counts)", state.population, (batch, game.num_local_states),
                        "integer")
        _in_range(label, f"{call} population (counts)", counts, 0, env.n, closed=True)
        sums = counts.sum(axis=1)
        if np.any(sums != env.n):
            row = int(np.argmax(sums != env.n))
            raise EnvCheckError(f"{label}: {call} population counts of episode {row} sum to {sums[row]}; they "
                                f"must sum to n={env.n}")
        return [(f"{call} global_state", g), (f"{call} population", counts)]
    g = _array(label, f"{call} global_state", state.global_state, (batch,), "real")
    population = np.asarray(state.population)
    if population.shape not in ((batch, env.n), (batch, env.num_bins)):
        raise EnvCheckError(f"{label}: {call} population has shape {population.shape}, expected (batch, n) = "
                            f"{(batch, env.n)} per-robot states or (batch, num_bins) = {(batch, env.num_bins)} counts")
    population = _array(label, f"{call} population", population, population.shape, "real")
    bounds = getattr(env, "state_bounds", None)
    if bounds is not None:
        _in_range(label, f"{call} global_state", g, bounds[0], bounds[1], closed=True)
        _in_range(label, f"{call} population", population, bounds[0], bounds[1], closed=True)
    return [(f"{call} global_state", g), (f"{call} population", population)]


def _check_observation(env: Any, label: str, call: str, obs: Any, batch: int) -> np.ndarray:
    obs = np.asarray(obs)
    if obs.dtype != np.float32:
        raise EnvCheckError(f"{label}: {call} has dtype {obs.dtype}; observations must be float32")
    obs = _array(label, call, obs, (batch, env.global_obs_dim), "float")
    hist = obs[:, env.global_feature_dim:]
    if np.any(hist < 0):
        raise EnvCheckError(f"{label}: {call} has a negative histogram entry; the last num_bins={env.num_bins} "
                            "columns are a histogram (>= 0, summing to 1)")
    sums = hist.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > HISTOGRAM_ATOL):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise EnvCheckError(f"{label}: {call}: the histogram part (last num_bins={env.num_bins} columns) of episode "
                            f"{row} sums to {sums[row]:.6g}; it must sum to 1")
    return obs


def _episode(env: Any, label: str, seed: int, batch: int, steps: int, k: int,
             agents: int) -> list[tuple[str, np.ndarray]]:
    """One checked episode from np.random.default_rng(seed); every array it saw, in order, named by its call."""
    rng = np.random.default_rng(seed)
    trace: list[tuple[str, np.ndarray]] = []
    local = _call(label, "prepare_local(UniformLocalPolicy)", env.prepare_local,
                  UniformLocalPolicy(env.num_local_actions))
    state = _call(label, f"reset(rng, batch={batch})", env.reset, rng, batch)
    trace += _check_state(env, label, "reset", state, batch)
    features = _call(label, "global_features(global_state)", env.global_features, state.global_state)
    trace.append(("global_features", _array(label, "global_features(global_state)", features,
                                            (batch, env.global_feature_dim), "float")))
    reps = _call(label, f"agents_reset(state, rng, m={agents})", env.agents_reset, state, rng, agents)
    reps = _check_agents(env, label, f"agents_reset(state, rng, m={agents})", reps, batch, agents)
    trace.append(("agents_reset", reps))
    for t in range(steps):
        for observation in OBSERVATIONS:
            call = f"step {t}: observe(state, rng, k={k}, {observation!r})"
            trace.append((call, _check_observation(env, label, call, _call(label, call, env.observe, state, rng, k,
                                                                           observation), batch)))
        mode = _array(label, f"step {t}: mode(state)", _call(label, f"step {t}: mode(state)", env.mode, state),
                      (batch,), "integer")
        _in_range(label, f"step {t}: mode(state)", mode, 0, env.num_bins, closed=False)
        trace.append((f"step {t}: mode", mode))
        call = f"step {t}: agent_features(global_state, agents)"
        feats = _array(label, call, _call(label, call, env.agent_features, state.global_state, reps),
                       (batch, agents, env.local_feature_dim), "float")
        trace.append((call, feats))
        before = [np.array(state.global_state, copy=True), np.array(state.population, copy=True)]
        local_actions = (t + np.arange(batch * agents).reshape(batch, agents)) % env.num_local_actions
        call = f"step {t}: agents_step(state, agents, actions, rng)"
        result = _call(label, call, env.agents_step, state, reps, local_actions, rng)
        if not isinstance(result, tuple) or len(result) != 2:
            raise EnvCheckError(f"{label}: {call} must return (next agents, r_l of each), got {type(result).__name__}")
        if not (np.array_equal(before[0], state.global_state) and np.array_equal(before[1], state.population)):
            raise EnvCheckError(f"{label}: {call} modified the population state; it must leave it as it was (the "
                                "rollouts step the population with the same state afterwards)")
        reps = _check_agents(env, label, f"{call} next agents", result[0], batch, agents)
        trace += [(f"{call} next agents", reps),
                  (f"{call} rewards", _array(label, f"{call} rewards", result[1], (batch, agents), "real"))]
        global_action = (t + np.arange(batch)) % env.num_global_actions
        call = f"step {t}: step(state, global_action, local, rng)"
        result = _call(label, call, env.step, state, global_action, local, rng)
        if not isinstance(result, tuple) or len(result) != 2:
            raise EnvCheckError(f"{label}: {call} must return (next state, system reward), got "
                                f"{type(result).__name__}")
        state, reward = result
        trace += _check_state(env, label, call, state, batch)
        trace.append((f"{call} reward", _array(label, f"{call} reward", reward, (batch,), "real")))
    return trace


def _check_agents(env: Any, label: str, call: str, agents: Any, batch: int, m: int) -> np.ndarray:
    game = getattr(env, "game", None)
    if isinstance(game, TabularGame):
        array = _array(label, call, agents, (batch, m), "integer")
        _in_range(label, call, array, 0, game.num_local_states, closed=False)
        return array
    array = _array(label, call, agents, (batch, m), "real")
    bounds = getattr(env, "state_bounds", None)
    if bounds is not None:
        _in_range(label, call, array, bounds[0], bounds[1], closed=True)
    return array
