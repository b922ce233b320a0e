"""Exceptions with messages that say what was wrong and what is valid."""


class AltmarlError(Exception):
    """Base class for every error this package raises on purpose."""


class GameValidationError(AltmarlError, ValueError):
    """A game, policy or sampling parameter is malformed."""


class CheckpointError(AltmarlError):
    """A checkpoint file is missing, corrupt, truncated or does not match."""
