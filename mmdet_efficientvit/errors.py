"""Errors whose message alone tells the user what is wrong and how to fix it.

The tools print these as one ``error: ...`` line and exit 1 (``tools_support.short_errors``); any
other exception is a bug and keeps its traceback.
"""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class ConfigError(ValueError):
    """A config value our modules cannot build (e.g. an unknown EfficientViT arch).

    A ``ValueError``, so code that catches mmengine's build errors keeps working; mmengine's registry
    re-raises it with the module name in front, keeping the type.
    """


class SetupError(Exception):
    """A problem with the user's set-up (data, files, paths) that the message explains fully."""
