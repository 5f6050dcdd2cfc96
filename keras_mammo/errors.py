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


class MissingExtraError(KerasMammoError, ImportError):
    """An optional part of keras-mammo is used without its extra installed; the message
    names the extra and the ``pip install`` line."""


class EngineStartError(KerasMammoError, RuntimeError):
    """A sweep's execution engine (Ray) could not start; the message says what to do instead."""


#: The import names each optional verb needs, by the extra (``setup.cfg``) that installs them.
EXTRAS = {
    "serve": ("fastapi", "uvicorn", "grpc", "tensorflow_serving", "httpx"),
    "sweep": ("pyDOE3", "statsmodels", "pandas", "ray"),
}


def require_extra(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Refuse, in one line, to run ``what`` when a module of ``extra`` is not installed.

    Args:
        extra: a key of :data:`EXTRAS` (the ``keras-mammo[extra]`` install).
        what: what needs it, e.g. ``"keras-mammo serve"``.
        modules: the import names needed (default: all of the extra's).

    Raises:
        MissingExtraError: ``"keras-mammo serve needs the 'serve' extra (tensorflow_serving
            is not installed): pip install 'keras-mammo[serve]'"``.
    """
    import importlib.util

    for name in modules if modules is not None else EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(f"{what} needs the '{extra}' extra ({name} is not installed): "
                                    f"pip install 'keras-mammo[{extra}]'")
