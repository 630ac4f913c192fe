"""Errors that are the user's to fix: the CLI prints them on one line and exits non-zero."""


class UserError(Exception):
    """A mistake in input, configuration or environment that the user can correct."""


class ConfigError(UserError):
    """A configuration file or value is wrong; the message names the file and key."""


class TransientError(Exception):
    """A fault that may pass on its own (a crashed child process, a site that did not answer):
    orchestrators retry these, and never a UserError."""
