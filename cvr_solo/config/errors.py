"""The one error of a bad setting: :class:`ConfigError`. Imports nothing, so that every
module that checks a setting can raise it without an import cycle.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration value is missing or out of range: the message names the key, the value
    and what is allowed.

    Example:
        >>> from cvr_solo.config.errors import ConfigError
        >>> issubclass(ConfigError, ValueError)
        True
    """
