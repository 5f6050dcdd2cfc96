"""Exceptions raised for user-facing errors.

Every error a user can cause (a bad config key, an unreadable file, an empty dataset)
is a :class:`KerasMammoError`; the CLI prints its message and exits non-zero instead of
showing a traceback.
"""


class KerasMammoError(Exception):
    """Base class of the errors caused by user input (files, configs, options)."""


class ConfigError(KerasMammoError, ValueError):
    """A configuration key or value is invalid; the message names the key and the allowed values."""


class OptionError(ConfigError):
    """A command-line option does not fit the config (``--resolution`` below every stage, ...);
    the CLI reports it as a usage error."""


class DataError(KerasMammoError, ValueError):
    """An input file or dataset is missing, corrupt or unusable; the message names the file."""


class TrainingDivergedError(KerasMammoError, RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrialFailedError(KerasMammoError, RuntimeError):
    """A sweep trial failed; the message gives its last error line and where the whole error is."""
