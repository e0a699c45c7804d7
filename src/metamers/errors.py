"""Exception types shared across the package.

Every error a user can cause derives from :class:`MetamersError`; the CLI turns
those into one-line messages and a non-zero exit code.
"""


class MetamersError(Exception):
    """Base class for errors caused by user input or environment."""


class StimulusError(MetamersError):
    """A stimulus could not be found, decoded or prepared."""


class ModelError(MetamersError):
    """A model could not be loaded or does not follow the model contract."""


class LayerError(ModelError):
    """A layer name does not exist in a model, or cannot be used as asked."""


class ConfigError(MetamersError):
    """A configuration value is missing or invalid."""
