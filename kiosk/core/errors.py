"""Errors raised by more than one core module (a module of its own, so they import nothing else)."""


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names file, key and what is allowed."""
