"""What the monitor.config package split added: the state location, passed-in family names,
no imports from the rest of monitor, and a README table that matches the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import (
    ConfigError,
    MetricsSettings,
    Settings,
    StateSettings,
    default_state_directory,
    env_reference,
    load_settings,
)
from tests.test_config import MINIMAL, load, write

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "config-package-test-token-5e1f"
NAMES = ("whatsapp_phone_number_status", "whatsapp_phone_number_quality", "whatsapp_waba_up")


# --- state.directory default -----------------------------------------------------------------


def test_state_directory_defaults_to_xdg_state_home(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    settings = load(tmp_path, MINIMAL, {"XDG_STATE_HOME": str(xdg), "HOME": "/nonexistent"})
    assert settings.state.directory == xdg / "waba-monitor"


def test_state_directory_without_xdg_is_under_home(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL, {"HOME": str(tmp_path)})
    assert settings.state.directory == tmp_path / ".local" / "state" / "waba-monitor"
    # The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
    relative = load(tmp_path, MINIMAL, {"HOME": str(tmp_path), "XDG_STATE_HOME": "rel/dir"})
    assert relative.state.directory == tmp_path / ".local" / "state" / "waba-monitor"


def test_state_directory_default_does_not_depend_on_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    config = write(tmp_path, MINIMAL)
    found = set()
    for cwd in (tmp_path, ROOT):
        monkeypatch.chdir(cwd)
        directory = load_settings(config, environ={"HOME": str(home)}).state.directory
        assert directory is not None and directory.is_absolute()
        found.add(directory)
    assert found == {home / ".local" / "state" / "waba-monitor"}


def test_state_directory_default_reads_the_given_environment_not_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "process"))
    given = load(tmp_path, MINIMAL, {"XDG_STATE_HOME": str(tmp_path / "given")})
    assert given.state.directory == tmp_path / "given" / "waba-monitor"
    # No mapping: the process environment, as for every other variable.
    process = load_settings(write(tmp_path, MINIMAL))
    assert process.state.directory == tmp_path / "process" / "waba-monitor"
    # Direct construction (tests of other modules) reads the process environment too.
    assert StateSettings().directory == tmp_path / "process" / "waba-monitor"


def test_state_directory_default_also_applies_inside_a_given_state_section(
    tmp_path: Path,
) -> None:
    text = MINIMAL + "state:\n  history_retention: 2h\n"
    settings = load(tmp_path, text, {"XDG_STATE_HOME": str(tmp_path)})
    assert settings.state.directory == tmp_path / "waba-monitor"
    assert settings.state.history_retention == 7200.0


def test_explicit_state_directory_wins_over_the_default(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    in_file = load(tmp_path, MINIMAL + "state:\n  directory: /srv/state\n", env)
    assert in_file.state.directory == Path("/srv/state")
    from_env = load(tmp_path, MINIMAL, {**env, "WABA_MONITOR_STATE__DIRECTORY": "/var/lib/x"})
    assert from_env.state.directory == Path("/var/lib/x")
    in_memory = load(tmp_path, MINIMAL + "state:\n  directory: null\n", env)
    assert in_memory.state.directory is None
    assert load(tmp_path, MINIMAL, {**env, "WABA_MONITOR_STATE__DIRECTORY": "null"}) \
        .state.directory is None


def test_default_state_directory_function() -> None:
    assert default_state_directory({"XDG_STATE_HOME": "/s"}) == Path("/s/waba-monitor")
    assert default_state_directory({"XDG_STATE_HOME": "", "HOME": "/h"}) == Path(
        "/h/.local/state/waba-monitor")
    assert default_state_directory({}) == Path.home() / ".local" / "state" / "waba-monitor"


# --- metric family names, passed in ----------------------------------------------------------


def test_family_patterns_are_checked_against_the_names_passed_in(tmp_path: Path) -> None:
    text = MINIMAL + "metrics:\n  include: ['whatsapp_phone_number_*']\n  exclude: [nope_*]\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={}, family_names=NAMES)
    assert caught.value.problems == (
        "metrics.exclude: 'nope_*' matches no metric family the monitor exports",)
    # The same pattern is fine when the passed names include a match...
    ok = load_settings(write(tmp_path, text), environ={}, family_names=(*NAMES, "nope_x"))
    assert ok.metrics.exclude == ("nope_*",)
    # ...and the line names the environment variable that set the value.
    with pytest.raises(ConfigError) as from_env:
        load_settings(write(tmp_path, MINIMAL),
                      environ={"WABA_MONITOR_METRICS__INCLUDE": '["typo"]'}, family_names=NAMES)
    assert from_env.value.problems == (
        "metrics.include: 'typo' matches no metric family the monitor exports "
        "(from WABA_MONITOR_METRICS__INCLUDE)",)


def test_without_family_names_patterns_are_not_checked(tmp_path: Path) -> None:
    text = MINIMAL + "metrics:\n  include: [anything_*]\n"
    assert load(tmp_path, text).metrics.include == ("anything_*",)


def test_section_models_take_the_names_from_pydantic_context() -> None:
    with pytest.raises(ValueError, match="'x' matches no metric family"):
        MetricsSettings.model_validate({"include": ["x"]}, context={"family_names": NAMES})
    assert MetricsSettings.model_validate({"include": ["x"]}).include == ("x",)


def test_families_chooses_among_the_names_given() -> None:
    assert MetricsSettings().families(NAMES) is None
    chosen = MetricsSettings(include=("whatsapp_phone_number_*",),
                             exclude=("*_quality",)).families(NAMES)
    assert chosen == frozenset({"whatsapp_phone_number_status"})
    assert MetricsSettings(exclude=("whatsapp_waba_up",)).families(NAMES) == frozenset(
        NAMES[:2])


def test_production_callers_pass_the_exporters_family_names(tmp_path: Path) -> None:
    from monitor.families import FAMILY_NAMES
    from monitor.runtime import exposition_options, file_loader

    path = write(tmp_path, MINIMAL + "metrics:\n  exclude: [whatsapp_nope_*]\n")
    with pytest.raises(ConfigError, match=r"metrics\.exclude: 'whatsapp_nope_\*' matches no"):
        file_loader(path, environ={"WABA_MONITOR_ACCESS_TOKEN": TOKEN})()
    path = write(tmp_path, MINIMAL + "metrics:\n  exclude: [whatsapp_phone_number_*]\n")
    settings = file_loader(path, environ={"WABA_MONITOR_ACCESS_TOKEN": TOKEN})().settings
    families = exposition_options(settings).families
    assert families is not None and families < set(FAMILY_NAMES)
    assert not any(name.startswith("whatsapp_phone_number_") for name in families)


# --- package boundaries ----------------------------------------------------------------------


def test_monitor_config_imports_nothing_else_from_monitor() -> None:
    code = ("import monitor.config, sys; "
            "print(sorted(m for m in sys.modules if m.startswith('monitor') "
            "and not m.startswith('monitor.config')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=60, check=True)
    assert result.stdout.strip() == "['monitor']"


def test_config_modules_stay_small() -> None:
    for module in (ROOT / "monitor" / "config").glob("*.py"):
        assert len(module.read_text(encoding="utf-8").splitlines()) < 500, module.name


def test_readme_table_is_the_generated_reference() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert env_reference() in readme
    assert "| state.directory | `WABA_MONITOR_STATE__DIRECTORY` | " \
        "$XDG_STATE_HOME/waba-monitor, else ~/.local/state/waba-monitor |" in env_reference()
    assert set(Settings.model_fields) >= {"state", "metrics"}
