"""Small torch networks, seeding, and the policy objects the deep learners hand around.

Policies act on the features a `PopulationEnv` produces:
* `QNetworkPolicy` — the coordinator: argmax of Q(observation, .), the
  observation being (features of s_g, histogram of its k-subsample);
* `ActorPolicy` — a robot: softmax (or argmax, `greedy`) of the actor's logits
  over the local features (s_g, s_l).

The uniform robot policy the alternation starts from is `marl.baselines.UniformLocalPolicy`.

Every input is checked for NaN/inf before it reaches a network, because a NaN
observation would otherwise turn into a silent argmax of 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from altmarl_ros.marl.errors import GameValidationError


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's legacy global and torch's generators, for any library code that draws from them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def check_features(name: str, features: np.ndarray, width: int) -> torch.Tensor:
    """Features as a float32 tensor, refusing NaN/inf and a wrong width with a clear error."""
    array = np.asarray(features, dtype=np.float32)
    if array.ndim < 1 or array.shape[-1] != width:
        raise GameValidationError(f"{name} must have {width} features on its last axis, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise GameValidationError(f"{name} contains NaN or inf at {where}; observations must be finite numbers")
    return torch.from_numpy(array)


@dataclass
class QNetworkPolicy:
    """Greedy coordinator over a Q network; `k` and `observation` say what it was trained to see."""

    net: nn.Module
    obs_dim: int
    num_actions: int
    k: int
    observation: str = "subsample"

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(check_features("coordinator observation", obs, self.obs_dim)).numpy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy action per row; ties to the lowest index (np.argmax)."""
        return np.argmax(self.q_values(obs), axis=-1)


@dataclass
class ActorPolicy:
    """A robot's policy network: probabilities over local actions from local features."""

    net: nn.Module
    feature_dim: int
    num_actions: int
    greedy: bool = False

    def logits(self, features: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.net(check_features("local observation", features, self.feature_dim))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = self.logits(features)
        if self.greedy:
            return np.eye(self.num_actions)[logits.argmax(dim=-1).numpy()]
        return torch.softmax(logits.double(), dim=-1).numpy()


def state_dict_arrays(prefix: str, net: nn.Module) -> dict[str, np.ndarray]:
    """A network's weights as named numpy arrays (for the .npz checkpoint)."""
    return {f"{prefix}/{name}": value.detach().cpu().numpy().copy() for name, value in net.state_dict().items()}


def load_state_dict_arrays(prefix: str, net: nn.Module, arrays: dict[str, np.ndarray], where: str) -> None:
    """Load weights stored by `state_dict_arrays`; a shape or name mismatch is a clear error."""
    from altmarl_ros.marl.errors import CheckpointError

    expected = net.state_dict()
    stored = {name[len(prefix) + 1:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}
    if set(stored) != set(expected):
        raise CheckpointError(f"{where}: {prefix} weights {sorted(stored)} do not match the network's "
                              f"{sorted(expected)} (another network shape?)")
    for name, value in expected.items():
        if tuple(stored[name].shape) != tuple(value.shape):
            raise CheckpointError(f"{where}: {prefix}/{name} has shape {tuple(stored[name].shape)}, the network "
                                  f"needs {tuple(value.shape)} (checkpoint from another network shape or task)")
    net.load_state_dict({name: torch.from_numpy(np.asarray(v)) for name, v in stored.items()})
