"""metamers: model metamers for measuring the invariances of neural networks.

The package is layered; data flows one way::

    stimuli -> models -> extraction / similarity / null -> synthesis
            -> evaluation -> studies -> report -> cli
"""

from metamers.errors import MetamersError

__version__ = "0.1.0"
__all__ = ["MetamersError", "__version__"]
