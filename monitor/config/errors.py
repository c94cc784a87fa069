"""The one exception of the configuration package.

It lives in its own module because loading, schema checks and secret reading all raise it, and
none of those modules may import another in a circle.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """Every problem found in the configuration, so that all can be fixed in one go."""

    def __init__(self, problems: Iterable[str] | str) -> None:
        items = (problems,) if isinstance(problems, str) else tuple(problems)
        if not items:
            raise ValueError("ConfigError needs at least one problem")
        self.problems: tuple[str, ...] = items
        super().__init__("\n".join(items))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[tuple[str, ...]]]:
        return (type(self), (self.problems,))
