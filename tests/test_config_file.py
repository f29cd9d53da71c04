from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
import yaml

from turnout import Secret
from turnout.config.load import TOP_LEVEL_KEYS, load_config, parse_config
from turnout.config.server import GatewayConfig, ServerConfig
from turnout.config.state import StateConfig
from turnout.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _data(**extra: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "chat", "model": "gpt-4o", "api_key": "sk-one"},
            {"model_name": "chat", "provider": "azure", "model": "gpt-4o-eu", "weight": 2},
            {"model_name": "mini", "model": "gpt-4o-mini", "tags": ["free"]},
        ],
        **extra,
    }


def _write(tmp_path: Path, text: str, name: str = "turnout.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _reveal(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.reveal()
    raise NotImplementedError(type(value))


# -- turnout's format ------------------------------------------------------------------------------


def test_turnout_format_loads_every_section(tmp_path: Path) -> None:
    data = _data(
        server={"host": "0.0.0.0", "port": 8080, "master_key": "sk-master", "log_level": "debug"},
        aliases={"gpt-4": "chat"},
        routing={"strategy": "least-busy"},
        retries={"num_retries": 4},
        fallbacks={"general": {"chat": ["mini"]}, "max_depth": 2},
        health={"cooldown_time": 12},
        breaker={"enabled": False},
        timeout=90,
    )
    config = load_config(_write(tmp_path, yaml.safe_dump(data)), environ={})
    assert config.format == "turnout"
    assert config.source == str(tmp_path / "turnout.yaml")
    assert config.warnings == ()
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 8080
    assert config.server.master_key == Secret("sk-master")
    assert config.server.log_level == "debug"
    router = config.router
    assert [d.model for d in router.model_list] == ["gpt-4o", "gpt-4o-eu", "gpt-4o-mini"]
    assert router.model_list[0].api_key == Secret("sk-one")
    assert router.model_list[1].provider == "azure"
    assert router.model_list[1].weight == 2.0
    assert router.model_list[2].tags == frozenset({"free"})
    assert router.aliases == {"gpt-4": "chat"}
    assert router.routing.strategy == "least-busy"
    assert router.retries.num_retries == 4
    assert router.fallbacks.general == {"chat": ["mini"]}
    assert router.fallbacks.max_depth == 2
    assert router.health.cooldown_time == 12.0
    assert router.breaker.enabled is False
    assert router.timeout == 90.0


def test_turnout_format_round_trips(tmp_path: Path) -> None:
    first = load_config(_write(tmp_path, yaml.safe_dump(_data(server={"port": 4100}))))
    dumped = {
        "server": msgspec.to_builtins(first.server, enc_hook=_reveal),
        **msgspec.to_builtins(first.router, enc_hook=_reveal),
    }
    again = load_config(_write(tmp_path, yaml.safe_dump(dumped), "again.yaml"))
    assert again.server == first.server
    assert again.router == first.router


def test_server_defaults() -> None:
    config = parse_config(_data())
    assert config.server == ServerConfig()
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 4000
    assert config.server.workers == 1
    assert config.server.master_key is None
    assert config.server.max_body_bytes == 10 * 1024 * 1024
    assert config.server.shutdown_timeout == 30.0
    assert config.server.log_level == "info"
    assert config.server.demo is False
    assert config.source is None


def test_an_empty_server_section_means_defaults() -> None:
    assert parse_config(_data(server=None)).server == ServerConfig()


def test_repr_never_shows_a_secret() -> None:
    config = parse_config(_data(server={"master_key": "sk-master"}))
    assert "sk-master" not in repr(config)
    assert "sk-one" not in repr(config)


# -- values from the environment --------------------------------------------------------------


def test_os_environ_form_is_resolved() -> None:
    data = _data()
    data["model_list"][0]["api_key"] = "os.environ/OPENAI_API_KEY"
    config = parse_config(data, environ={"OPENAI_API_KEY": "sk-from-env"})
    assert config.router.model_list[0].api_key == Secret("sk-from-env")


def test_braces_form_is_resolved_several_times_in_one_string() -> None:
    data = _data()
    data["model_list"][1]["base_url"] = "https://${HOST}:${PORT}/v1"
    config = parse_config(data, environ={"HOST": "example.com", "PORT": "8443"})
    assert config.router.model_list[1].base_url == "https://example.com:8443/v1"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "https://fallback.example"),
        ({"BASE": ""}, "https://fallback.example"),
        ({"BASE": "https://set.example"}, "https://set.example"),
    ],
)
def test_default_applies_when_unset_or_empty(environ: dict[str, str], expected: str) -> None:
    data = _data()
    data["model_list"][1]["base_url"] = "${BASE:-https://fallback.example}"
    assert parse_config(data, environ=environ).router.model_list[1].base_url == expected


def test_empty_default_is_allowed() -> None:
    data = _data()
    data["model_list"][1]["base_url"] = "https://x.example/${SUFFIX:-}"
    assert parse_config(data, environ={}).router.model_list[1].base_url == "https://x.example/"


@pytest.mark.parametrize("value", ["os.environ/OPENAI_API_KEY", "${OPENAI_API_KEY}"])
def test_missing_variable_names_path_and_variable(value: str) -> None:
    data = _data()
    data["model_list"][0]["api_key"] = value
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ={"OTHER_KEY": "sk-do-not-show"})
    assert str(caught.value) == (
        "model_list[0].api_key: environment variable OPENAI_API_KEY is not set"
    )
    assert caught.value.path == "model_list[0].api_key"


def test_missing_variable_error_never_contains_a_value() -> None:
    data = _data()
    data["model_list"][1]["base_url"] = "https://${HOST}/${MISSING}"
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ={"HOST": "secret-host.internal"})
    message = str(caught.value)
    assert message == "model_list[1].base_url: environment variable MISSING is not set"
    assert "secret-host" not in message


def test_missing_variable_in_server_section_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"^server\.master_key: environment variable MK is"):
        parse_config(_data(server={"master_key": "${MK}"}), environ={})


def test_malformed_reference_is_an_error() -> None:
    data = _data()
    data["model_list"][0]["api_key"] = "${OPENAI_API_KEY"
    with pytest.raises(ConfigError, match=r"^model_list\[0\]\.api_key: malformed environment"):
        parse_config(data, environ={"OPENAI_API_KEY": "sk-x"})


def test_numbers_and_booleans_from_the_environment_convert() -> None:
    data = _data(
        server={"port": "${PORT}", "workers": "os.environ/WORKERS"},
        health={"disable_cooldowns": "${NO_COOLDOWNS}"},
        timeout="${DEADLINE}",
    )
    data["model_list"][0].update(rpm="${RPM}", weight="${WEIGHT}")
    environ = {
        "PORT": "8080",
        "WORKERS": "4",
        "NO_COOLDOWNS": "true",
        "DEADLINE": "45.5",
        "RPM": "600",
        "WEIGHT": "0.5",
    }
    config = parse_config(data, environ=environ)
    assert config.server.port == 8080
    assert config.server.workers == 4
    assert config.router.health.disable_cooldowns is True
    assert config.router.timeout == 45.5
    assert config.router.model_list[0].rpm == 600
    assert config.router.model_list[0].weight == 0.5


def test_a_number_from_the_environment_that_is_no_number_names_the_path() -> None:
    data = _data()
    data["model_list"][2]["rpm"] = "${RPM}"
    with pytest.raises(
        ConfigError, match=r"^model_list\[2\]\.rpm: Expected `int \| null`, got `str`$"
    ):
        parse_config(data, environ={"RPM": "many"})


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNOUT_TEST_KEY", "sk-process")
    data = _data()
    data["model_list"][0]["api_key"] = "${TURNOUT_TEST_KEY}"
    assert parse_config(data).router.model_list[0].api_key == Secret("sk-process")


# -- errors name the exact path ---------------------------------------------------------------


def test_bad_value_in_model_list_names_the_exact_path() -> None:
    data = _data()
    data["model_list"][2]["weight"] = "heavy"
    with pytest.raises(
        ConfigError, match=r"^model_list\[2\]\.weight: Expected `float \| null`, got `str`$"
    ):
        parse_config(data)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"port": 70000}, "server.port: Expected `int` <= 65535"),
        ({"port": "http"}, "server.port: Expected `int`, got `str`"),
        ({"workers": 0}, "server.workers: Expected `int` >= 1"),
        ({"max_body_bytes": 0}, "server.max_body_bytes: Expected `int` >= 1"),
        ({"shutdown_timeout": -1}, "server.shutdown_timeout: Expected `float` >= 0.0"),
        ({"log_level": "loud"}, "server.log_level: Invalid enum value 'loud'"),
        ({"prot": 4000}, "server: Object contains unknown field `prot`"),
        ({"master_key": ""}, "server: master_key must not be empty"),
        ({"master_key": 1234}, "server.master_key: Expected `str`, got `int`"),
        ([4000], "server: expected a mapping, got a list"),
    ],
)
def test_bad_server_value_names_the_exact_path(server: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_config(_data(server=server))


def test_unknown_top_level_key_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_data(fallback={"general": {}}))
    message = str(caught.value)
    assert message.startswith("unknown top-level key 'fallback' (did you mean 'fallbacks'?)")
    assert all(key in message for key in TOP_LEVEL_KEYS)


def test_top_level_keys_are_server_and_the_router_fields() -> None:
    assert set(TOP_LEVEL_KEYS) == {
        "server",
        "store",
        "model_list",
        "aliases",
        "routing",
        "retries",
        "fallbacks",
        "health",
        "breaker",
        "timeout",
        "hedging",
        "stream_failover",
        "learned_timeouts",
        "state",
    }


def test_router_rules_still_apply() -> None:
    with pytest.raises(ConfigError, match=r"^aliases\.gpt-4: alias 'gpt-4' resolves to 'nope'"):
        parse_config(_data(aliases={"gpt-4": "nope"}))


# -- the file ---------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "model_list:\n  - model_name: chat\n    model: [gpt-4o\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4:1: invalid YAML: ")
    assert "flow sequence" in message


def test_yaml_mapping_error_points_at_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "timeout: 10\nrouting:\n  strategy: a: b\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3:14: invalid YAML: ")):
        load_config(path)


def test_duplicate_key_is_an_error_with_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "model_list: []\ntimeout: 10\nretries: {num_retries: 1}\ntimeout: 20\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:4:1: invalid YAML: duplicate key 'timeout' (first at line 2)"
    )


def test_merge_keys_are_no_duplicates(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "model_list:\n"
        "  - &base {model_name: chat, model: gpt-4o, rpm: 10}\n"
        "  - {<<: *base, model: gpt-4o-mini, rpm: 20}\n",
    )
    config = load_config(path)
    assert [(d.model, d.rpm) for d in config.router.model_list] == [
        ("gpt-4o", 10),
        ("gpt-4o-mini", 20),
    ]


def test_a_base_url_with_credentials_in_the_file_is_rejected_without_them(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "model_list:\n"
        "  - {model_name: chat, model: gpt-4o}\n"
        "  - model_name: chat\n"
        "    model: gpt-4o-mini\n"
        "    base_url: https://proxy:${PROXY_PASSWORD}@proxy.example/v1\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"PROXY_PASSWORD": "pw-from-env"})
    message = str(caught.value)
    assert message.startswith(
        "model_list[1].base_url: 'https://***@proxy.example/v1' carries credentials"
    )
    assert "pw-from-env" not in message
    assert "proxy:" not in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n"])
def test_empty_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: the config is empty"):
        load_config(path)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("hello\n", "a string")])
def test_non_mapping_top_level_is_a_clear_error(tmp_path: Path, text: str, kind: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"top level must be a mapping.*got {kind}$"):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: no such file$"):
        load_config(path)


def test_file_that_is_no_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"model_list: []\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_a_litellm_config_is_detected_and_imported(tmp_path: Path) -> None:
    text = "model_list:\n  - model_name: chat\n    litellm_params: {model: openai/gpt-4o}\n"
    config = load_config(_write(tmp_path, text))
    assert config.format == "litellm"
    assert config.router.model_list[0].model == "gpt-4o"


@pytest.mark.parametrize(
    "section",
    [
        "router_settings",
        "litellm_settings",
        "general_settings",
        "environment_variables",
        "credential_list",
    ],
)
def test_any_litellm_section_marks_a_litellm_config(section: str) -> None:
    data: dict[str, Any] = {
        "model_list": [{"model_name": "chat", "litellm_params": {"model": "gpt-4o"}}],
        section: [] if section == "credential_list" else {},
    }
    assert parse_config(data).format == "litellm"


# -- the documented example ------------------------------------------------------------------


def test_documented_example_loads() -> None:
    environ = {"OPENAI_API_KEY": "sk-openai", "OPENROUTER_API_KEY": "or-key"}
    config = load_config(EXAMPLES / "turnout.yaml", environ=environ)
    assert isinstance(config, GatewayConfig)
    assert config.format == "turnout"
    assert config.warnings == ()
    router = config.router
    groups = {d.model_name for d in router.model_list}
    assert groups == {"gpt-4o", "gpt-4o-mini"}
    assert router.model_list[0].api_key == Secret("sk-openai")
    assert router.model_list[1].api_key == Secret("or-key")
    assert router.fallbacks.general == {"gpt-4o": ["gpt-4o-mini"]}
    assert router.aliases["gpt-4"] == "gpt-4o"
    assert any(d.tags for d in router.model_list)
    assert config.server == ServerConfig()


def test_documented_example_needs_its_key() -> None:
    with pytest.raises(ConfigError, match="environment variable OPENAI_API_KEY is not set"):
        load_config(EXAMPLES / "turnout.yaml", environ={"OPENROUTER_API_KEY": "or-key"})


def test_documented_example_explains_every_setting() -> None:
    """Every field of every section appears in the example, so none goes unexplained."""
    text = (EXAMPLES / "turnout.yaml").read_text(encoding="utf-8")
    from turnout.config import providers
    from turnout.config import router as router_config

    structs: list[type[msgspec.Struct]] = [
        *get_args(providers.Settings),
        ServerConfig,
        router_config.Deployment,
        router_config.Timeouts,
        router_config.RoutingConfig,
        router_config.HybridWeights,
        router_config.RetryConfig,
        router_config.FallbackConfig,
        router_config.HealthConfig,
        router_config.BreakerConfig,
        router_config.RouterConfig,
        StateConfig,
    ]
    missing = [
        f"{struct.__name__}.{name}"
        for struct in structs
        for name in struct.__struct_fields__
        if not re.search(rf"^\s*(- |# )?{name}:", text, re.MULTILINE)
    ]
    assert missing == []
