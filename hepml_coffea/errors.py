"""Exceptions shared across layers (a leaf: imports nothing from the package).

:class:`ConfigurationError` lives here so that low layers (the inference engine) can raise
it without importing :mod:`hepml_coffea.config`; ``from hepml_coffea.config import
ConfigurationError`` still works and gives the same class.
"""

from __future__ import annotations

__all__ = ["ConfigurationError"]


class ConfigurationError(RuntimeError):
    """A configuration mistake (never skipped as bad input)."""
