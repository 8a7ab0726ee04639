"""turnout-openfeature: turnout's flags through the OpenFeature Python SDK.

Entry point: `turnout.providers:openfeature` (`TurnoutProvider`).
"""

from turnout_openfeature.provider import TurnoutProvider, changed_flags

__all__ = ["TurnoutProvider", "changed_flags"]

__version__ = "0.1.0"
