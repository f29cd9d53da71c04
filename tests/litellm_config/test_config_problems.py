"""A LiteLLM config with problems: every one reported at once at its path, misspellings as
errors with a did-you-mean, real LiteLLM keys turnout ignores as warnings with the reason, and
deployments of providers turnout lacks skipped (fatal with ``--strict``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.cli import main
from turnout.config.litellm_load import ConfigErrors
from turnout.config.load import check_config_file, parse_config
from turnout.errors import ConfigError

TYPOS: dict[str, Any] = {
    "model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o", "api_bse": "x"}},
        {"model_name": "b", "modle_info": {}, "litellm_params": {"model": "gpt-4o", "rpm": "x"}},
        {"model_name": "c", "litellm_params": {"model": "gpt-4o"}, "model_info": {"bsae_model": 1}},
    ],
    "router_settings": {"routing_stratgy": "least-busy", "num_retries": -1},
    "litellm_settings": {"dorp_params": True, "success_callback": ["langfuse"]},
    "general_settings": {"master_kye": "sk-1", "alerting": ["slack"]},
    "router_setings": {},
}


def test_every_problem_is_reported_at_once_each_at_its_path() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse_config(TYPOS, environ={})
    errors = caught.value.errors
    # In the order of the file, by section and entry, though found in two passes.
    assert [error.split(": ", 1)[0] for error in errors] == [
        "model_list[0].litellm_params.api_bse",
        "model_list[1].modle_info",
        "model_list[1].litellm_params.rpm",
        "model_list[2].model_info.bsae_model",
        "router_settings.routing_stratgy",
        "router_settings.num_retries",
        "litellm_settings.dorp_params",
        "general_settings.master_kye",
        "router_setings",
    ]
    assert (
        "model_list[0].litellm_params.api_bse: unknown key 'api_bse': did you mean "
        "'api_base'?" in errors
    )
    assert "router_setings: unknown key 'router_setings': did you mean 'router_settings'?" in errors
    assert str(caught.value).startswith("9 errors:\n")


def test_real_litellm_keys_turnout_ignores_stay_warnings_with_their_reason() -> None:
    data = {
        "model_list": [{"model_name": "a", "litellm_params": {"model": "gpt-4o"}}],
        "litellm_settings": {"success_callback": ["langfuse"], "some_future_setting": 1},
        "general_settings": {"alerting": ["slack"], "disable_error_logs": True},
    }
    config = parse_config(data, environ={})
    by_path = dict(warning.split(": ", 1) for warning in config.warnings)
    assert "/metrics" in by_path["litellm_settings.success_callback"]
    assert by_path["litellm_settings.some_future_setting"] == "ignored: turnout has no equivalent"
    assert set(by_path) >= {"general_settings.alerting", "general_settings.disable_error_logs"}


UNSUPPORTED: dict[str, Any] = {
    "model_list": [
        {"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o"}},
        {"model_name": "hf", "litellm_params": {"model": "huggingface/meta-llama/Llama-3"}},
        {"model_name": "chat", "litellm_params": {"model": "cohere/command-r"}},
        {"model_name": "odd", "litellm_params": {"model": "x", "custom_llm_provider": "foo"}},
    ],
    "router_settings": {
        "fallbacks": [{"chat": ["hf", "odd"]}, {"hf": ["chat"]}],
        "model_group_alias": {"llama": "hf", "gpt": "chat"},
    },
}


def test_an_unsupported_provider_is_skipped_by_path_and_the_rest_loads() -> None:
    config = parse_config(UNSUPPORTED, environ={})
    assert [(d.model_name, d.provider) for d in config.router.model_list] == [("chat", "openai")]
    assert [line.split(" (turnout serves")[0] for line in config.skipped] == [
        "model_list[1].litellm_params.model: provider 'huggingface' is not supported",
        "model_list[2].litellm_params.model: provider 'cohere' is not supported",
        "model_list[3].litellm_params.custom_llm_provider: provider 'foo' is not supported",
    ]
    assert "anthropic" in config.skipped[0] and "bedrock" in config.skipped[0]
    # A fallback or alias naming a group that has no deployment left is dropped, with a warning.
    assert config.router.fallbacks.general == {}
    assert config.router.aliases == {"gpt": "chat"}
    gone = [w for w in config.warnings if "was skipped" in w]
    assert [w.split(": ", 1)[0] for w in gone] == [
        "router_settings.fallbacks[0].chat",
        "router_settings.fallbacks[0].chat",
        "router_settings.fallbacks[1].hf",
        "router_settings.model_group_alias.llama",
    ]
    assert "model group 'hf' was skipped (model_list[1])" in gone[0]


def test_a_file_with_nothing_left_to_serve_is_an_error() -> None:
    data = {"model_list": [{"model_name": "hf", "litellm_params": {"model": "huggingface/x"}}]}
    with pytest.raises(ConfigError, match=r"^model_list: no deployment left to serve"):
        parse_config(data, environ={})


def _write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_check_config_prints_every_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, TYPOS)
    assert main(["check-config", path]) == 2
    out, err = capsys.readouterr()
    assert err.count("error: ") == 9
    assert "did you mean 'drop_params'?" in err
    assert err.endswith(f"{path}: 9 errors\n")
    assert "warning: litellm_settings.success_callback" in out


def test_check_config_skips_unsupported_providers_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, UNSUPPORTED)
    assert main(["check-config", path]) == 0
    out, err = capsys.readouterr()
    assert err.count("skipped: model_list[") == 3
    assert "OK (litellm format): 1 deployments in 1 model groups" in out
    assert "3 skipped" in out
    assert main(["check-config", "--strict", path]) == 2
    _, err = capsys.readouterr()
    assert err.count("error: model_list[") == 3
    assert main(["serve", "--strict", "--config", path, "--port", "0"]) == 2
    _, err = capsys.readouterr()
    assert "provider 'huggingface' is not supported" in err
    assert "--strict" in err


SECRETS: dict[str, Any] = {
    "model_list": [
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "azure/gpt-4o",
                "api_base": "os.environ/AZURE_API_BASE",
                "api_key": "os.environ/AZURE_API_KEY",
                "rpm": "${CHAT_RPM}",
            },
        }
    ],
    "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
}


def test_unset_variables_are_notes_by_default_and_errors_when_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, SECRETS)
    report = check_config_file(path, environ={}, unset_ok=True)
    assert report.errors == ()
    assert [note.split(": ", 1)[0] for note in report.notes] == [
        "model_list[0].litellm_params.api_base",
        "model_list[0].litellm_params.api_key",
        "model_list[0].litellm_params.rpm",
        "general_settings.master_key",
    ]
    assert "environment variable CHAT_RPM is not set" in report.notes[2]
    required = check_config_file(path, environ={}, unset_ok=False)
    assert required.config is None
    assert len(required.errors) == 4
    environ = {"AZURE_API_BASE": "https://x.openai.azure.com", "AZURE_API_KEY": "k"}
    environ |= {"CHAT_RPM": "lots", "LITELLM_MASTER_KEY": "sk-m"}
    [error] = check_config_file(path, environ=environ).errors
    assert error.startswith("model_list[0].litellm_params.rpm: Expected `int")
    assert main(["check-config", path]) == 0
    out, _ = capsys.readouterr()
    assert out.count("note: ") == 4
    assert main(["check-config", "--require-env", path]) == 2


def test_a_turnout_format_file_checks_without_its_secrets_too(tmp_path: Path) -> None:
    data = {
        "model_list": [
            {"model_name": "chat", "provider": "openai", "model": "gpt-4o", "api_key": "${KEY}"}
        ],
        "server": {"master_key": "os.environ/MASTER"},
    }
    path = _write(tmp_path, data)
    report = check_config_file(path, environ={}, unset_ok=True)
    assert report.config is not None and report.errors == ()
    assert [note.split(": ", 1)[0] for note in report.notes] == [
        "model_list[0].api_key",
        "server.master_key",
    ]
    [error] = check_config_file(path, environ={}).errors
    assert "environment variable KEY is not set" in error


def test_an_entry_in_error_is_one_error_not_one_per_name_of_its_group() -> None:
    data = {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "gpt-4o"}},
            {"model_name": "b", "litellm_params": {"model": 3}},
            {"model_name": "c", "litellm_params": {"model": "gpt-4o", "rpm": "many"}},
        ],
        "router_settings": {
            "fallbacks": [{"a": ["b", "c"]}, {"b": ["a"]}],
            "model_group_alias": {"bb": "b", "cc": "c"},
        },
    }
    with pytest.raises(ConfigErrors) as caught:
        parse_config(data, environ={})
    assert [error.split(":")[0] for error in caught.value.errors] == [
        "model_list[1].litellm_params.model",
        "model_list[2].litellm_params.rpm",
    ]


def test_a_librarys_own_provider_is_kept_when_named_and_skipped_otherwise() -> None:
    """A router built in-process may serve a provider turnout's gateway lacks (``Router(config,
    {"sim": ...})``): the loader keeps ``sim/...`` deployments when told of it."""
    data = {
        "model_list": [
            {"model_name": "chat", "litellm_params": {"model": "sim/steady"}},
            {"model_name": "other", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k"}},
        ]
    }
    kept = parse_config(data, environ={}, providers={"sim"}).router.model_list
    assert [(d.model_name, d.provider, d.model) for d in kept] == [
        ("chat", "sim", "steady"),
        ("other", "openai", "gpt-4o"),
    ]
    served = parse_config(data, environ={})
    assert [d.model_name for d in served.router.model_list] == ["other"]
    assert any("model_list[0]" in skipped and "'sim'" in skipped for skipped in served.skipped)


def test_partner_models_on_vertex_are_skipped_by_path_and_gemini_and_claude_stay() -> None:
    """turnout sends ``vertex_ai`` deployments Gemini's API, or Anthropic's for Claude: another
    partner model there would get requests it cannot read, so it is skipped, naming its path."""
    data = {
        "model_list": [
            {
                "model_name": "gemini",
                "litellm_params": {
                    "model": "vertex_ai/gemini-1.5-pro",
                    "vertex_project": "p",
                    "api_key": "token",
                },
            },
            {
                "model_name": "claude",
                "litellm_params": {
                    "model": "vertex_ai/claude-3-5-sonnet@20240620",
                    "vertex_project": "p",
                    "vertex_location": "us-east5",
                },
            },
            {
                "model_name": "llama",
                "litellm_params": {"model": "vertex_ai/meta/llama3-405b-instruct-maas"},
            },
            {
                "model_name": "mistral",
                "litellm_params": {"model": "vertex_ai/mistral-large@2407"},
            },
        ]
    }
    config = parse_config(data, environ={})
    assert [(d.model_name, d.provider) for d in config.router.model_list] == [
        ("gemini", "gemini"),
        ("claude", "vertex_anthropic"),
    ]
    assert [skipped.split(":", 1)[0] for skipped in config.skipped] == [
        "model_list[2].litellm_params.model",
        "model_list[3].litellm_params.model",
    ]
    assert "Vertex AI" in config.skipped[0]
