"""Errors qbench reports to the user as one line (a traceback only with ``--debug``)."""


class QBenchError(Exception):
    """A failure qbench explains in one line; the CLI exits with :attr:`exit_code`."""

    exit_code = 1


class UsageError(QBenchError):
    """Bad input from the user: an unknown name, a bad option value, a missing data file (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value that fails validation (wrong type, out of range, unknown key)."""


class DataError(UsageError):
    """A data file that is missing or corrupt; the message names the file and where it was looked for."""


class PluginError(QBenchError):
    """A plugin that broke the contract: a name clash, a registration that raised, a bad registered object."""

    exit_code = 2


class StoreError(QBenchError):
    """A result store that cannot be opened or is not a qbench store; it is left untouched."""

    exit_code = 2
