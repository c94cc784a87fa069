"""Tests of monitor.config: every way a configuration is read, overridden or refused."""

from __future__ import annotations

import pickle
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.config import (
    ConfigError,
    Settings,
    env_reference,
    format_duration,
    load_settings,
    parse_duration,
    resolve_access_token,
    resolve_app_secret,
)

TOKEN = "EAAGsecretTOKENvalue123"

MINIMAL = """
businesses:
  - id: "100000000000001"
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    return load_settings(write(tmp_path, text), environ=env or {})


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    err = caught.value
    assert str(err) == "\n".join(err.problems)
    return err.problems


# --- a valid file ----------------------------------------------------------------------------


def test_full_file_round_trip(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        graph:
          base_url: https://graph.example.test/
          api_version: v23.0
          access_token_file: /run/secrets/token
          concurrency: 4
          timeout: 2s
          max_retries: 0
          page_limit: 50
          max_throttle_wait: 0
          per_number_fill: false
        businesses:
          - id: 100000000000001          # an int in YAML becomes a string
            wabas: ["200000000000001", 200000000000002]
            registration_cap: 20
          - id: "100000000000002"
            discover: [client]
        schedule:
          scan_interval: 1s
          jitter: 0
          discovery_interval: 1h30m
        server:
          listen: 127.0.0.1:9100
        logging:
          level: DEBUG
          format: json
        """,
    )
    graph = settings.graph
    assert graph.base_url == "https://graph.example.test"  # trailing slash dropped
    assert graph.api_version == "v23.0"
    assert graph.access_token_file == Path("/run/secrets/token")
    assert (graph.concurrency, graph.timeout, graph.max_retries) == (4, 2.0, 0)
    assert (graph.page_limit, graph.max_throttle_wait, graph.per_number_fill) == (50, 0.0, False)
    first, second = settings.businesses
    assert first.id == "100000000000001"
    assert first.wabas == ("200000000000001", "200000000000002")
    assert first.registration_cap == 20 and first.configured_cap == 20
    assert second.wabas is None and second.discover == ("client",)
    assert second.registration_cap == "auto" and second.configured_cap is None
    assert settings.business_ids == ("100000000000001", "100000000000002")
    assert settings.schedule.scan_interval == 1.0
    assert settings.schedule.discovery_interval == 5400.0
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9100)
    assert (settings.logging.level, settings.logging.format) == ("debug", "json")


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    graph = settings.graph
    assert graph.base_url == "https://graph.facebook.com"
    assert graph.api_version == "v24.0"
    assert graph.access_token_file is None and graph.app_secret_file is None
    assert (graph.concurrency, graph.timeout, graph.max_retries, graph.page_limit) == (
        16,
        15.0,
        3,
        100,
    )
    assert graph.max_throttle_wait == 60.0 and graph.per_number_fill is True
    business = settings.businesses[0]
    assert business.wabas is None
    assert business.registration_cap == "auto"
    assert business.discover == ("owned", "client")
    assert settings.schedule.scan_interval == 60.0
    assert settings.schedule.jitter == 0.1
    assert settings.schedule.discovery_interval == 900.0
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 9877)  # noqa: S104
    assert (settings.logging.level, settings.logging.format) == ("info", "auto")


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL + "graph:\nschedule:\n")
    assert settings.graph.concurrency == 16
    assert settings.schedule.scan_interval == 60.0


def test_settings_are_frozen_and_hashable(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    with pytest.raises(ValidationError):
        settings.graph.concurrency = 1
    with pytest.raises(ValidationError):
        settings.businesses = ()  # type: ignore[misc]
    assert hash(settings) == hash(load(tmp_path, MINIMAL))
    assert settings == load(tmp_path, MINIMAL)
    assert settings != load(tmp_path, MINIMAL + "schedule:\n  jitter: 0.5\n")


def test_direct_construction_reads_no_implicit_source() -> None:
    # Only the keyword arguments: no os.environ, .env or secrets dir behind a test's back.
    init, env, dotenv, secrets = object(), object(), object(), object()
    sources = Settings.settings_customise_sources(Settings, init, env, dotenv, secrets)  # type: ignore[arg-type]
    assert sources == (init,)


def test_direct_construction_validates_like_the_loader() -> None:
    settings = Settings(businesses=[{"id": 1}])
    assert settings.business_ids == ("1",)
    with pytest.raises(ValidationError) as caught:
        Settings(businesses=[{"id": "1"}, {"id": "1"}])
    assert caught.value.errors()[0]["loc"] == ("businesses", 1, "id")


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s250ms", 90.25),
        ("1.5s", 1.5),
        (" 15s ", 15.0),
        ("15", 15.0),
        ("0.25", 0.25),
        (15, 15.0),
        (2.5, 2.5),
        (0, 0.0),
        (timedelta(minutes=2), 120.0),
    ],
)
def test_duration_forms(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("abc", "invalid duration"),
        ("5x", "invalid duration"),
        ("", "invalid duration"),
        ("1h-30m", "invalid duration"),
        ("s", "invalid duration"),
        ("-5s", "must not be negative"),
        (-1, "must not be negative"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (True, "not a boolean"),
        ([1], "expected a duration"),
    ],
)
def test_bad_durations(raw: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.5, "500ms"), (15.0, "15s"), (5400.0, "1h30m"), (0.0, "0s")]
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_durations_in_a_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        MINIMAL
        + """
graph:
  timeout: 500ms
  max_throttle_wait: 90
schedule:
  scan_interval: 2.5
  discovery_interval: 5m
""",
    )
    assert settings.graph.timeout == 0.5
    assert settings.graph.max_throttle_wait == 90.0
    assert settings.schedule.scan_interval == 2.5
    assert settings.schedule.discovery_interval == 300.0


def test_zero_and_negative_intervals_are_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL
        + """
graph:
  timeout: 0s
schedule:
  scan_interval: 0
  discovery_interval: -1m
""",
    )
    assert found == (
        "graph.timeout: must be greater than 0",
        "schedule.scan_interval: must be greater than 0",
        "schedule.discovery_interval: duration must not be negative (got '-1m')",
    )


# --- many problems at once -------------------------------------------------------------------


def test_several_problems_reported_together(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        graph:
          api_version: "24"
          concurrency: 0
          bogus: 1
        businesses:
          - id: "100000000000001"
          - id: "100000000000002"
            wabas: ["not-a-number"]
            registration_cap: 0
        schedule:
          scan_interval: -5s
          jitter: yes
        server:
          listen: nowhere
        logging:
          level: loud
        extra_section: {}
        """,
    )
    paths = [problem.split(": ", 1)[0] for problem in found]
    assert paths == [
        "graph.api_version",
        "graph.concurrency",
        "graph.bogus",
        "businesses[1].wabas[0]",
        "businesses[1].registration_cap",
        "schedule.scan_interval",
        "schedule.jitter",
        "server.listen",
        "logging.level",
        "extra_section",
    ]
    assert "graph.bogus: unknown key" in found
    assert "extra_section: unknown key" in found
    assert "must look like v24.0" in found[0]
    assert "must be a numeric ID" in found[3]
    assert "schedule.scan_interval: duration must not be negative (got '-5s')" in found
    assert "schedule.jitter: expected a number, not a boolean" in found


def test_duplicate_business_ids(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        businesses:
          - id: "100000000000001"
          - id: "100000000000002"
          - id: 100000000000001
        """,
    )
    assert found == (
        "businesses[2].id: duplicate business id 100000000000001 (also businesses[0].id)",
    )


def test_waba_under_two_businesses_names_both_places(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        businesses:
          - id: "1"
            wabas: ["200", "201"]
          - id: "2"
            wabas: ["300", "201"]
        """,
    )
    assert len(found) == 1
    assert found[0].startswith("businesses[1].wabas[1]: WABA 201 ")
    assert "businesses[0].wabas[1]" in found[0]


def test_clashes_are_reported_alongside_invalid_entries(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        businesses:
          - id: "1"
            wabas: ["200"]
          - id: "1"
            wabas: ["bad", "200"]
        """,
    )
    assert [problem.split(": ", 1)[0] for problem in found] == [
        "businesses[1].wabas[0]",
        "businesses[1].id",
        "businesses[1].wabas[1]",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("businesses: []\n", "businesses: must list at least one business"),
        ("businesses:\n", "businesses: must list at least one business"),
        ("graph: {}\n", "businesses: required key is missing"),
        ("", "businesses: required key is missing"),
    ],
)
def test_businesses_are_required(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == (expected,)


@pytest.mark.parametrize(
    ("business", "fragment"),
    [
        ("{id: '1', wabas: []}", "businesses[0].wabas: empty list"),
        ("{id: '1', discover: []}", "businesses[0].discover: must name at least one"),
        ("{id: '1', discover: [owned, owned]}", "businesses[0].discover: lists an edge twice"),
        ("{id: '1', discover: [partner]}", "businesses[0].discover[0]: Input should be"),
        ("{id: '1', wabas: ['2'], discover: [owned]}", "businesses[0]: discover is only used"),
        ("{id: '1', registration_cap: many}", 'must be "auto" or an integer >= 1'),
        ("{id: '1', registration_cap: true}", 'must be "auto" or an integer >= 1'),
        ("{id: -5}", "businesses[0].id: must be a numeric ID"),
        ("{wabas: ['2']}", "businesses[0].id: required key is missing"),
    ],
)
def test_bad_business_entries(tmp_path: Path, business: str, fragment: str) -> None:
    found = problems(tmp_path, f"businesses:\n  - {business}\n")
    assert len(found) == 1 and fragment in found[0], found


def test_secret_by_value_in_file_gets_a_hint_and_is_not_echoed(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + f"graph:\n  access_token: {TOKEN}\n")
    assert found[0].startswith("graph.access_token: unknown key")
    assert "access_token_file" in found[0]
    assert TOKEN not in str(found)


@pytest.mark.parametrize(
    ("base_url", "fragment"),
    [
        ("ftp://graph.facebook.com", "must be an http(s) URL"),
        ("graph.facebook.com", "must be an http(s) URL"),
        ("https://user:pw@graph.facebook.com", "must not contain credentials"),
        ("https://graph.facebook.com/?x=1", "query string"),
    ],
)
def test_bad_base_url(tmp_path: Path, base_url: str, fragment: str) -> None:
    found = problems(tmp_path, MINIMAL + f"graph:\n  base_url: '{base_url}'\n")
    assert len(found) == 1 and found[0].startswith("graph.base_url: ") and fragment in found[0]
    assert "pw@" not in found[0]


# --- the file itself -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.problems == (f"{path}: config file not found",)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={})  # a directory
    assert caught.value.problems[0].startswith(f"{tmp_path}: cannot read config file")


def test_yaml_syntax_error_has_line_and_no_content(tmp_path: Path) -> None:
    path = write(tmp_path, f"businesses:\n  - id: '1'\ngraph:\n  base_url: [{TOKEN}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}: invalid YAML at line ")
    assert "line 5" in problem or "line 4" in problem
    assert TOKEN not in problem


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "graph:\n  concurrency: 1\n  concurrency: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.problems == (
        f"{path}: invalid YAML at line 6, column 3: found duplicate key 'concurrency'",
    )


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- graph\n- businesses\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.problems[0].startswith(f"{path}: the top level must be a mapping")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"businesses:\n  - id: '\xff'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.problems == (f"{path}: not valid UTF-8 text",)


# --- environment overrides -------------------------------------------------------------------

FILE_WITH_GRAPH = MINIMAL + "graph:\n  concurrency: 8\n  max_retries: 5\n"


def test_env_scalar_override_wins_over_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        FILE_WITH_GRAPH,
        {
            "WABA_MONITOR_GRAPH__CONCURRENCY": "32",
            "WABA_MONITOR_GRAPH__BASE_URL": "http://127.0.0.1:8080",
            "WABA_MONITOR_SCHEDULE__SCAN_INTERVAL": "5s",
            "WABA_MONITOR_SERVER__LISTEN": "[::1]:9000",
            "WABA_MONITOR_LOGGING__FORMAT": "console",
        },
    )
    assert settings.graph.concurrency == 32  # env wins
    assert settings.graph.max_retries == 5  # the rest of the file's section is kept
    assert settings.graph.base_url == "http://127.0.0.1:8080"
    assert settings.schedule.scan_interval == 5.0
    assert (settings.server.host, settings.server.port) == ("::1", 9000)
    assert settings.logging.format == "console"


def test_env_names_are_case_insensitive_and_empty_means_unset(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        FILE_WITH_GRAPH,
        {"waba_monitor_graph__concurrency": "2", "WABA_MONITOR_GRAPH__MAX_RETRIES": ""},
    )
    assert settings.graph.concurrency == 2
    assert settings.graph.max_retries == 5


def test_env_whole_section_as_json_merges_with_file(tmp_path: Path) -> None:
    settings = load(tmp_path, FILE_WITH_GRAPH, {"WABA_MONITOR_GRAPH": '{"page_limit": 10}'})
    assert (settings.graph.page_limit, settings.graph.concurrency) == (10, 8)


def test_env_null_unsets_a_file_value(tmp_path: Path) -> None:
    text = MINIMAL + "graph:\n  access_token_file: /run/secrets/token\n"
    settings = load(tmp_path, text, {"WABA_MONITOR_GRAPH__ACCESS_TOKEN_FILE": "null"})
    assert settings.graph.access_token_file is None


def test_env_businesses_json_replaces_file_list(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        MINIMAL,
        {
            "WABA_MONITOR_BUSINESSES": (
                '[{"id": 300000000000001, "wabas": ["400000000000001"]},'
                ' {"id": "300000000000002", "registration_cap": "auto", "discover": ["owned"]}]'
            )
        },
    )
    assert settings.business_ids == ("300000000000001", "300000000000002")
    assert settings.businesses[0].wabas == ("400000000000001",)
    assert settings.businesses[1].discover == ("owned",)


def test_env_businesses_alone_is_enough(tmp_path: Path) -> None:
    settings = load(tmp_path, "", {"WABA_MONITOR_BUSINESSES": '[{"id": "7"}]'})
    assert settings.business_ids == ("7",)


def test_bad_env_values_are_reported_with_path_and_variable(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL,
        {
            "WABA_MONITOR_GRAPH__CONCURRENCY": "lots",
            "WABA_MONITOR_SCHEDULE__SCAN_INTERVAL": "-5s",
            "WABA_MONITOR_GRAPH__BOGUS": "1",
            "WABA_MONITOR_BUSINESSES": '[{"id": "1", "wabas": ["x"]}, {"id": "1"}]',
        },
    )
    assert found == (
        "graph.concurrency: Input should be a valid integer, unable to parse string as an "
        "integer (from WABA_MONITOR_GRAPH__CONCURRENCY)",
        "graph.bogus: unknown key (from WABA_MONITOR_GRAPH__BOGUS)",
        "businesses[0].wabas[0]: must be a numeric ID (digits only), got 'x' "
        "(from WABA_MONITOR_BUSINESSES)",
        "schedule.scan_interval: duration must not be negative (got '-5s') "
        "(from WABA_MONITOR_SCHEDULE__SCAN_INTERVAL)",
        "businesses[1].id: duplicate business id 1 (also businesses[0].id) "
        "(from WABA_MONITOR_BUSINESSES)",
    )


def test_file_errors_are_not_blamed_on_env(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL + "graph:\n  concurrency: 0\n",
        {"WABA_MONITOR_GRAPH": '{"timeout": "3s"}', "WABA_MONITOR_GRAPH__MAX_RETRIES": "2"},
    )
    assert found == ("graph.concurrency: Input should be greater than or equal to 1",)


def test_env_invalid_json(tmp_path: Path) -> None:
    # Reported once, not again as "businesses: required key is missing".
    found = problems(tmp_path, "graph: {}\n", {"WABA_MONITOR_BUSINESSES": '[{"id": 1'})
    assert found == (
        "businesses: WABA_MONITOR_BUSINESSES is not valid JSON "
        "(Expecting ',' delimiter at line 1, column 10)",
    )


def test_env_name_mistakes_are_reported(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL,
        {
            "WABA_MONITOR_SCHEDULE_SCAN_INTERVAL": "5s",
            "WABA_MONITOR_GRAHP__BASE_URL": "http://x",
            "WABA_MONITOR_BUSINESSES__0__ID": "1",
            "WABA_MONITOR_GRAPH__TIMEOUT__X": "1",
        },
    )
    assert found[:4] == (
        "WABA_MONITOR_BUSINESSES__0__ID: businesses can only be set as a whole, "
        "as a JSON list in WABA_MONITOR_BUSINESSES",
        "WABA_MONITOR_GRAHP__BASE_URL: unknown section 'grahp' "
        "(sections: graph, businesses, schedule, server, webhooks, state, sharding, metrics, "
        "templates, logging)",
        "WABA_MONITOR_GRAPH__TIMEOUT__X: too deeply nested; use WABA_MONITOR_GRAPH__KEY",
        "WABA_MONITOR_SCHEDULE_SCAN_INTERVAL: not a config variable; "
        "did you mean WABA_MONITOR_SCHEDULE__SCAN_INTERVAL?",
    )


def test_secret_and_foreign_env_vars_are_not_config_keys(tmp_path: Path) -> None:
    env = {
        "WABA_MONITOR_ACCESS_TOKEN": TOKEN,
        "WABA_MONITOR_APP_SECRET": "appsecret",
        "WABA_MONITOR_WEBHOOK_VERIFY_TOKEN": "verify",
        "WABA_MONITOR_CONFIG": "/etc/waba-monitor.yaml",
        "HOME": "/root",
    }
    settings = load(tmp_path, MINIMAL, env)
    assert settings == load(tmp_path, MINIMAL)


def test_secret_set_as_config_key_in_env_is_not_echoed(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL, {"WABA_MONITOR_GRAPH__ACCESS_TOKEN": TOKEN})
    assert found[0].startswith("graph.access_token: unknown key")
    assert found[0].endswith("(from WABA_MONITOR_GRAPH__ACCESS_TOKEN)")
    assert TOKEN not in "\n".join(found)


# --- secrets ---------------------------------------------------------------------------------


def with_token_file(tmp_path: Path, file: Path) -> Settings:
    return load(tmp_path, MINIMAL + f"graph:\n  access_token_file: {file}\n")


def test_token_from_file_is_stripped_and_wins_over_env(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n", encoding="utf-8")
    settings = with_token_file(tmp_path, token_file)
    assert resolve_access_token(settings, {"WABA_MONITOR_ACCESS_TOKEN": "other"}) == TOKEN


def test_token_from_env(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    assert resolve_access_token(settings, {"WABA_MONITOR_ACCESS_TOKEN": f" {TOKEN}\n"}) == TOKEN


@pytest.mark.parametrize("env", [{}, {"WABA_MONITOR_ACCESS_TOKEN": "  "}])
def test_token_missing(tmp_path: Path, env: dict[str, str]) -> None:
    settings = load(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as caught:
        resolve_access_token(settings, env)
    assert caught.value.problems == (
        "graph.access_token_file: no access token: "
        "set graph.access_token_file or WABA_MONITOR_ACCESS_TOKEN",
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read"),  # does not exist
        ("dir", "cannot read"),  # a directory
        ("", "is empty"),
        (" \n\t\n", "is empty"),
        (f"{TOKEN}\n{TOKEN}\n", "contains whitespace"),
        (TOKEN * 5000, "larger than 64 KiB"),
        (b"\xff\xfe" + TOKEN.encode(), "not valid UTF-8"),
    ],
)
def test_token_file_problems_name_key_and_path_never_content(
    tmp_path: Path, content: str | bytes | None, fragment: str
) -> None:
    token_file = tmp_path / "token"
    if content == "dir":
        token_file.mkdir()
    elif isinstance(content, bytes):
        token_file.write_bytes(content)
    elif content is not None:
        token_file.write_text(content, encoding="utf-8")
    settings = with_token_file(tmp_path, token_file)
    with pytest.raises(ConfigError) as caught:
        resolve_access_token(settings, {"WABA_MONITOR_ACCESS_TOKEN": TOKEN})
    (problem,) = caught.value.problems
    assert problem.startswith(f"graph.access_token_file: {token_file}") or problem.startswith(
        f"graph.access_token_file: cannot read {token_file}"
    )
    assert fragment in problem
    assert TOKEN not in problem and TOKEN not in repr(caught.value)


def test_token_with_whitespace_in_env_is_refused_without_echo(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as caught:
        resolve_access_token(settings, {"WABA_MONITOR_ACCESS_TOKEN": f"{TOKEN} {TOKEN}"})
    assert caught.value.problems[0].startswith("WABA_MONITOR_ACCESS_TOKEN: contains whitespace")
    assert TOKEN not in str(caught.value)


def test_app_secret_sources(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    assert resolve_app_secret(settings, {}) is None
    assert resolve_app_secret(settings, {"WABA_MONITOR_APP_SECRET": "s3cr3t"}) == "s3cr3t"
    secret_file = tmp_path / "app_secret"
    secret_file.write_text("fromfile\n", encoding="utf-8")
    with_file = load(tmp_path, MINIMAL + f"graph:\n  app_secret_file: {secret_file}\n")
    assert resolve_app_secret(with_file, {"WABA_MONITOR_APP_SECRET": "s3cr3t"}) == "fromfile"
    secret_file.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^graph\.app_secret_file: .* is empty$"):
        resolve_app_secret(with_file, {})


# --- listen ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:9877", "0.0.0.0", 9877),  # noqa: S104
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("[::]:9877", "::", 9877),
        ("[::1]:80", "::1", 80),
        ("[fe80::1%eth0]:9877", "fe80::1%eth0", 9877),
        ("localhost:9100", "localhost", 9100),
        ("exporter.example.com:65535", "exporter.example.com", 65535),
    ],
)
def test_listen_parsing(tmp_path: Path, listen: str, host: str, port: int) -> None:
    settings = load(tmp_path, MINIMAL + f"server:\n  listen: '{listen}'\n")
    assert (settings.server.host, settings.server.port) == (host, port)


@pytest.mark.parametrize(
    ("listen", "fragment"),
    [
        ("9877", "must be host:port"),
        (":9877", "must be host:port"),
        ("::1:9877", "IPv6 addresses must be in brackets"),
        ("[nothost]:9877", "is not an IPv6 address"),
        ("[::1]9877", "IPv6 addresses must be in brackets"),
        ("localhost:99999", "port must be a number from 0 to 65535"),
        ("localhost:http", "port must be a number"),
        ("localhost:", "port must be a number"),
        ("999.1.1.1:80", "not a valid IPv4 address"),
        ("bad_host!:80", "not a valid host name"),
    ],
)
def test_bad_listen(tmp_path: Path, listen: str, fragment: str) -> None:
    found = problems(tmp_path, MINIMAL + f"server:\n  listen: '{listen}'\n")
    assert len(found) == 1 and found[0].startswith("server.listen: ") and fragment in found[0]


# --- misc ------------------------------------------------------------------------------------


def test_config_error_pickles_and_needs_a_problem() -> None:
    err = ConfigError(["a: x", "b: y"])
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object
    assert copy.problems == ("a: x", "b: y") and str(copy) == "a: x\nb: y"
    assert ConfigError("only: one").problems == ("only: one",)
    with pytest.raises(ValueError):
        ConfigError([])


def test_env_reference_lists_every_key_and_variable() -> None:
    table = env_reference()
    for section in ("graph", "schedule", "server", "logging"):
        model = Settings.model_fields[section].annotation
        assert model is not None
        for key in model.model_fields:
            assert f"| {section}.{key} | `WABA_MONITOR_{section.upper()}__{key.upper()}` |" in table
    for key in ("id", "wabas", "registration_cap", "discover"):
        assert f"| businesses[].{key} |" in table
    for name in ("WABA_MONITOR_BUSINESSES", "WABA_MONITOR_ACCESS_TOKEN", "WABA_MONITOR_APP_SECRET"):
        assert f"`{name}`" in table
    assert "| graph.timeout | `WABA_MONITOR_GRAPH__TIMEOUT` | 15s |" in table


def test_kubernetes_service_link_variables_are_not_config_keys(tmp_path: Path) -> None:
    env = {
        "WABA_MONITOR_STATE_SERVICE_HOST": "10.0.0.1",
        "WABA_MONITOR_STATE_SERVICE_PORT_HTTP": "9877",
        "WABA_MONITOR_STATE_PORT": "tcp://10.0.0.1:9877",
        "WABA_MONITOR_STATE_PORT_9877_TCP_ADDR": "10.0.0.1",
    }
    assert load(tmp_path, MINIMAL, env).server.listen == "0.0.0.0:9877"
    found = problems(tmp_path, MINIMAL, {"WABA_MONITOR_STATE_DIRECTORY": "/x"})
    assert found == ("WABA_MONITOR_STATE_DIRECTORY: not a config variable; "
                     "did you mean WABA_MONITOR_STATE__DIRECTORY?",)
