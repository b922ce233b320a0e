"""`altmarl eval-sim`: a trained zones run's policies driving robots in the kinematic or PyBullet world."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from altmarl_ros.cli._args import NONNEGATIVE, POSITIVE, _check_output_file, _parse_assignments
from altmarl_ros.marl.config import config_from_mapping
from altmarl_ros.marl.errors import AltmarlError

log = logging.getLogger("altmarl")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `eval-sim` subparser, its handler cmd_eval_sim."""
    p = sub.add_parser("eval-sim", parents=[common], help="run a trained run's policies in the swarm world",
                       description="Drive robots in the PyBullet or kinematic world with the trained policies; report "
                       "return, mode accuracy, and the transition frequencies measured in physics next to P_l.")
    p.add_argument("run", type=Path, help="run directory or checkpoint.npz")
    p.add_argument("--backend", choices=("kinematic", "pybullet"), default=None,
                   help="pybullet: wheels and contact; kinematic: unicycle integration (default: the world "
                        "config's backend: key, else kinematic)")
    p.add_argument("--n", type=int, default=50, help="number of robots (default 50)")
    p.add_argument("--episodes", type=POSITIVE, default=3, help="episodes of the task's horizon (>= 1, default 3)")
    p.add_argument("--seed", type=NONNEGATIVE, default=0, help="seed of every draw in the world (default 0)")
    p.add_argument("--rollouts", type=POSITIVE, default=50, help="rollouts per seed of the tabular comparison")
    p.add_argument("--world-config", type=Path, help="YAML with a `world:` mapping (see config/world.yaml)")
    p.add_argument("--set", dest="world_set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one world key, e.g. --set decision_period=10 (repeatable)")
    p.add_argument("--gui", action="store_true", default=None,
                   help="open the PyBullet window (pybullet backend; default: the world config's gui: key)")
    p.add_argument("--png", type=Path, help="write a top-down picture of the last step here")
    p.add_argument("--gif", type=Path, help="write an animation of the last episode here")
    p.set_defaults(func=cmd_eval_sim)


def cmd_eval_sim(args: argparse.Namespace) -> int:
    """Run episodes in the world; report return, mode accuracy and physics' transitions next to the model's P_l."""
    import numpy as np
    from tqdm import tqdm

    from altmarl_ros.marl.checkpoint import load_checkpoint, resolve_path
    from altmarl_ros.marl.evaluation import evaluate
    from altmarl_ros.runs import load
    from altmarl_ros.sim.episode import ZONE_MOVES, run_episode, transition_table

    checkpoint = load_checkpoint(args.run)
    task = checkpoint.meta.get("task")
    if task != "zones":
        raise AltmarlError(f"{resolve_path(args.run)} holds a {task!r} run; eval-sim drives robots between the zones "
                           "of the swarm world and runs zones policies only (evaluate this run with `altmarl eval`)")
    trained = load(args.run, checkpoint=checkpoint)
    config = world_config(args, trained.game.num_local_states)
    for flag in ("png", "gif"):
        _check_output_file(getattr(args, flag), f"--{flag}")
    n = args.n
    game = trained.game.with_n(n)
    log.info("running %d episode(s) of %d decisions (%.0f s each) with n=%d on the %s backend", args.episodes,
             game.horizon, game.horizon * config.decision_period, n, config.backend)
    rng = np.random.default_rng(args.seed)
    returns, modes, transitions, wall, sim_time = [], [], 0, 0.0, 0.0
    last = None
    for episode in tqdm(range(args.episodes), desc="episodes", disable=args.quiet):
        record = 10 if (args.gif or args.png) and episode == args.episodes - 1 else 0
        last = run_episode(config, game, trained.global_policy, trained.local_policy, n, rng, record_every=record)
        returns.append(last.discounted_return)
        modes.append(last.mode_accuracy)
        transitions = transitions + last.transitions
        wall += last.wall_seconds
        sim_time += last.sim_seconds
    tabular = evaluate(game, trained.global_policy, trained.local_policy, list(range(args.seed, args.seed + 3)),
                       args.rollouts)
    empirical, model, tv = transition_table(game, transitions)
    spread = f"± {np.std(returns, ddof=1) / np.sqrt(len(returns)):.3f} (standard error over episodes)" \
        if len(returns) > 1 else "(one episode: no error estimate)"
    print(f"{trained.meta['task']} k={trained.k} in the {config.backend} world, n={n}, {args.episodes} episode(s): "
          f"{sim_time:.0f} s simulated in {wall:.1f} s (real-time factor {sim_time / max(wall, 1e-9):.1f})")
    print(f"  discounted return   {np.mean(returns):.3f} {spread}")
    print(f"  mode accuracy       {np.mean(modes):.4f}")
    print(f"  tabular evaluation  {tabular.return_mean:.3f} ± {tabular.return_std:.3f} "
          f"(same n, {len(tabular.seeds)} seeds x {args.rollouts} rollouts)")
    moves = {0: "stay", 1: "up", -1: "down"}
    print("  where robots went, by local action (displacement d = s' - s mod Z; physics vs model P_l):")
    print("    action " + " ".join(f"{'d=' + str(d):>13}" for d in range(game.num_local_states)))
    for a, move in enumerate(ZONE_MOVES):
        if model[a].sum() == 0:
            continue
        cells = " ".join(f"{empirical[a, d]:.3f} / {model[a, d]:.3f}" for d in range(game.num_local_states))
        print(f"    {moves[int(move)]:>6} {cells}")
    print(f"  total-variation distance, physics vs P_l (visit-weighted): {tv:.4f}")
    if args.png and last is not None and last.frames:
        from altmarl_ros.sim.render import render_png

        print(f"  picture: {render_png(config, last.frames[-1], args.png)}")
    if args.gif and last is not None and last.frames:
        from altmarl_ros.sim.render import render_gif

        print(f"  animation: {render_gif(config, last.frames, args.gif)}")
    return 0


def world_config(args: argparse.Namespace, zones: int) -> Any:
    """The world eval-sim drives: --world-config's keys, then --set, then --backend / --gui where given
    (a YAML `backend:` or `gui:` holds unless the flag is on the command line)."""
    from altmarl_ros.sim.config import WorldConfig

    values = dict(_world_section(args.world_config))
    values.update(_parse_assignments(args.world_set))
    values.update({name: getattr(args, name) for name in ("backend", "gui") if getattr(args, name) is not None})
    values["zones"] = zones
    return config_from_mapping(WorldConfig, values)


def _world_section(path: Path | None) -> dict[str, Any]:
    """The `world:` mapping of a --world-config file (its only section), checked for shape."""
    if path is None:
        return {}
    from altmarl_ros.tasks.config import load_yaml

    data = load_yaml(path)
    unknown = sorted(str(key) for key in data if key != "world")
    if unknown:
        raise AltmarlError(f"{path}: unknown top-level keys {unknown}; valid: ['world']")
    world = data.get("world")
    if world is not None and not isinstance(world, dict):
        raise AltmarlError(f"{path}: `world:` must be a mapping of world keys to values (e.g. world: "
                           f"{{decision_period: 10}}), got {type(world).__name__} {world!r}")
    return world or {}
