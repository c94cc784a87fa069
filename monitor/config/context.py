"""What the caller tells validation: the metric family names and the environment.

BaseSettings validates through its own ``__init__``, which drops pydantic's ``context``
argument, so :func:`load_settings <monitor.config.loading.load_settings>` hands its context
over in a ContextVar for the length of one validation. Section models validated on their own
(``MetricsSettings.model_validate(data, context=...)``) may use pydantic's context instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import ValidationInfo

__all__ = ["CONTEXT_ENVIRON", "CONTEXT_FAMILY_NAMES", "context_value", "validation_context"]

CONTEXT_FAMILY_NAMES = "family_names"  # names metrics.include/exclude may match
CONTEXT_ENVIRON = "environ"  # the environment the default state.directory is read from

_LOAD_CONTEXT: ContextVar[Mapping[str, Any] | None] = ContextVar("load_context", default=None)


@contextmanager
def validation_context(context: Mapping[str, Any]) -> Iterator[None]:
    """Make ``context`` visible to the validators of every model validated in this block."""
    token = _LOAD_CONTEXT.set(context)
    try:
        yield
    finally:
        _LOAD_CONTEXT.reset(token)


def context_value(key: str, info: ValidationInfo | None = None) -> Any:
    """A value the caller passed (pydantic context, else the loader's), or None without one."""
    context = info.context if info is not None else None
    if not isinstance(context, Mapping):
        context = _LOAD_CONTEXT.get()
    return context.get(key) if context is not None else None
