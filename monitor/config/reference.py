"""The configuration reference table of the README, generated from the models.

Generated so that the README cannot drift from the code (a test compares the two).
"""

from __future__ import annotations

from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from monitor.config.schema import BusinessSettings, Settings, env_name, state_directory_default
from monitor.config.secrets import ACCESS_TOKEN_ENV, APP_SECRET_ENV, WEBHOOK_VERIFY_TOKEN_ENV
from monitor.config.types import format_duration, parse_duration

__all__ = ["STATE_DIRECTORY_DEFAULT_TEXT", "env_reference"]

# The default state.directory depends on the environment; the table says how, not where.
STATE_DIRECTORY_DEFAULT_TEXT = "$XDG_STATE_HOME/waba-monitor, else ~/.local/state/waba-monitor"


def _render_default(field: FieldInfo) -> str:
    """The default as a user would write it in the file."""
    if field.is_required():
        return "required"
    if field.default_factory is state_directory_default:
        return STATE_DIRECTORY_DEFAULT_TEXT
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "null"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and any(
        isinstance(m, BeforeValidator) and m.func is parse_duration for m in field.metadata
    ):
        return format_duration(default)
    if isinstance(default, tuple):
        return "[" + ", ".join(str(item) for item in default) + "]"
    return str(default)


def env_reference() -> str:
    """A Markdown table of every key, its environment variable, default and meaning.

    Generated from the models so that the README cannot drift from the code.
    """
    rows = ["| key | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for section, section_field in Settings.model_fields.items():
        annotation = section_field.annotation
        if section == "businesses":
            rows.append(
                f"| businesses | `{env_name(section)}` (JSON list) | required | "
                "At least one business portfolio. |"
            )
            for key, field in BusinessSettings.model_fields.items():
                rows.append(
                    f"| businesses[].{key} | (inside the JSON list) | "
                    f"{_render_default(field)} | {field.description} |"
                )
            continue
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        for key, field in annotation.model_fields.items():
            rows.append(
                f"| {section}.{key} | `{env_name(section, key)}` | "
                f"{_render_default(field)} | {field.description} |"
            )
    rows += [
        f"| (secret) | `{ACCESS_TOKEN_ENV}` | | Access token, when graph.access_token_file "
        "is not set. |",
        f"| (secret) | `{APP_SECRET_ENV}` | | App secret, when graph.app_secret_file is not set. |",
        f"| (secret) | `{WEBHOOK_VERIFY_TOKEN_ENV}` | | Reserved for the webhook receiver. |",
    ]
    return "\n".join(rows) + "\n"
