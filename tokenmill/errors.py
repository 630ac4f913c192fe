"""Errors that are the user's to fix: the CLI prints them on one line and exits non-zero."""


class UserError(Exception):
    """A mistake in input, configuration or environment that the user can correct."""


class ConfigError(UserError):
    """A configuration file or value is wrong; the message names the file and key."""
