"""Exception types shared across the package.

Every error a user can cause derives from :class:`MetamersError`; the CLI turns
those into one-line messages and a non-zero exit code.

Each error also derives from the builtin a caller would catch without knowing
this package (as scikit-learn's ``NotFittedError`` is also a ``ValueError``):

==================  ==============================================
error               also a
==================  ==============================================
``StimulusError``   ``ValueError``
``ConfigError``     ``ValueError``
``LayerError``      ``LookupError`` (and a ``ModelError``)
``ModelError``      only a ``MetamersError``: its causes are mixed
                    (a missing weights file, a failed download or
                    import, a model breaking the contract)
==================  ==============================================

Examples
--------
>>> from metamers.errors import ConfigError, LayerError
>>> try:
...     raise LayerError("no layer 'blocks.9'")
... except LookupError as exc:
...     print(exc)
no layer 'blocks.9'
>>> issubclass(ConfigError, ValueError)
True
"""


class MetamersError(Exception):
    """Base class for errors caused by user input or environment."""


class StimulusError(MetamersError, ValueError):
    """A stimulus could not be found, decoded or prepared."""


class ModelError(MetamersError):
    """A model could not be loaded or does not follow the model contract."""


class LayerError(ModelError, LookupError):
    """A layer name does not exist in a model, or cannot be used as asked."""


class ConfigError(MetamersError, ValueError):
    """A configuration value is missing or invalid."""
