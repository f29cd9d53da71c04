from __future__ import annotations

from typing import Any

import pytest

from turnout import Deployment, RouterConfig, Secret, parse_router_config
from turnout.config.providers import BedrockSettings
from turnout.config.router import HybridWeights
from turnout.errors import ConfigError


def _data(**extra: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "chat", "model": "gpt-4o", "api_key": "sk-secret"},
            {"model_name": "chat", "model": "gpt-4o-mini", "weight": 2},
        ],
        **extra,
    }


def test_parses_plain_data_into_typed_config() -> None:
    config = parse_router_config(_data(routing={"strategy": "least-busy"}))
    first, second = config.model_list
    assert isinstance(first.api_key, Secret)
    assert first.api_key.reveal() == "sk-secret"
    assert second.weight == 2.0
    assert config.routing.strategy == "least-busy"


def test_bad_value_names_the_exact_path() -> None:
    data = _data()
    data["model_list"][1]["weight"] = "heavy"
    with pytest.raises(ConfigError, match=r"^model_list\[1\]\.weight: Expected `float"):
        parse_router_config(data)


def test_negative_weight_is_rejected_with_its_path() -> None:
    data = _data()
    data["model_list"][0]["weight"] = -1
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.weight"):
        parse_router_config(data)


def test_unknown_field_is_rejected() -> None:
    data = _data()
    data["model_list"][0]["wieght"] = 1
    with pytest.raises(ConfigError, match=r"model_list\[0\].*wieght"):
        parse_router_config(data)


def test_deployment_ids_are_derived_stably_and_differ_by_key() -> None:
    a = Deployment(model_name="g", model="m", api_key=Secret("k1"))
    again = Deployment(model_name="g", model="m", api_key=Secret("k1"))
    other_key = Deployment(model_name="g", model="m", api_key=Secret("k2"))
    assert a.id == again.id
    assert a.id != other_key.id
    assert "k1" not in a.id
    assert Deployment(model_name="g", model="m", id="mine").id == "mine"


def test_deployments_are_named_readably_and_uniquely() -> None:
    config = parse_router_config(
        {
            "model_list": [
                {"model_name": "fast", "model": "gpt-4o-mini", "base_url": "http://a.test/v1"},
                {"model_name": "fast", "model": "gpt-4o-mini", "base_url": "http://b.test/v1"},
                {"model_name": "fast", "model": "gpt-4o", "id": "primary-eu"},
                {"model_name": "slow", "model": "o1", "name": "reasoner"},
            ]
        }
    )
    names = [deployment.name for deployment in config.model_list]
    assert names == [
        "fast/openai/gpt-4o-mini",
        "fast/openai/gpt-4o-mini#2",
        "primary-eu",
        "reasoner",
    ]
    # The name never enters the id: renaming a deployment keeps its state and spend.
    assert config.model_list[3].id == Deployment(model_name="slow", model="o1").id


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"model_list\[1\]\.id: duplicate deployment id"):
        RouterConfig(
            model_list=(
                Deployment(model_name="g", model="m"),
                Deployment(model_name="g", model="m"),
            )
        )


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"a": "a"}, "alias cycle: a -> a"),
        ({"a": "b", "b": "a"}, "alias cycle: a -> b -> a"),
        ({"a": "b", "b": "c", "c": "b"}, "alias cycle: b -> c -> b"),
        ({"a": "nowhere"}, "which is no model group"),
        ({"chat": "chat"}, "alias cycle"),
    ],
)
def test_alias_problems_are_rejected(aliases: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_router_config(_data(aliases=aliases))


def test_alias_chains_resolve() -> None:
    config = parse_router_config(_data(aliases={"gpt": "smart", "smart": "chat"}))
    assert config.aliases == {"gpt": "smart", "smart": "chat"}


def test_alias_may_not_shadow_a_group() -> None:
    data = _data(aliases={"chat": "other"})
    data["model_list"].append({"model_name": "other", "model": "m"})
    with pytest.raises(ConfigError, match="has the name of a model group"):
        parse_router_config(data)


def test_unknown_strategy_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"routing: unknown strategy 'fastest'; known: .*"):
        parse_router_config(_data(routing={"strategy": "fastest"}))


def test_litellm_strategy_names_are_accepted() -> None:
    config = parse_router_config(_data(routing={"strategy": "simple-shuffle"}))
    assert config.routing.strategy == "simple-shuffle"


def test_hybrid_weights_must_not_all_be_zero() -> None:
    with pytest.raises(ConfigError, match="must not all be zero"):
        HybridWeights(cost=0, latency=0, reliability=0)
    with pytest.raises(ConfigError, match=r"routing\.hybrid\.cost"):
        parse_router_config(_data(routing={"hybrid": {"cost": -1}}))


def test_fallback_targets_must_exist() -> None:
    with pytest.raises(ConfigError, match=r"fallbacks\.general\.chat"):
        parse_router_config(_data(fallbacks={"general": {"chat": ["missing"]}}))


# -- base_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://user:hunter2@api.example.com/v1", "'https://***@api.example.com/v1' carries"),
        ("http://hunter2@127.0.0.1:8080/v1", "'http://***@127.0.0.1:8080/v1' carries"),
        ("user:hunter2@api.example.com/v1", "'***@api.example.com/v1' carries credentials"),
        ("http://user:hunter2@api.example.com?k=v", "'http://***@api.example.com?***' carries"),
        ("api.example.com/v1", "has no scheme: write https://... or http://..."),
        ("localhost:8000/v1", "has no scheme"),
        ("ftp://files.example.com/v1", "scheme 'ftp' is not supported: use https:// or http://"),
        ("http:///v1", "'http:///v1' has no host"),
        ("http://api.example.com:99999/v1", "is not a valid URL"),
        ("http://user:hunter2/x@api.example.com/v1", "'http://***@api.example.com/v1' is not a"),
        ("http://[::1/v1", "is not a valid URL"),
        ("http://api.example.com:0/v1", "port 0 cannot be connected to"),
        ("https://api.example.com/v1?key=hunter2", "'https://api.example.com/v1?***' has a query"),
        ("https://api.example.com/v1#hunter2", "has a query or fragment"),
    ],
)
def test_a_base_url_that_fails_every_call_is_rejected_with_its_path(url: str, problem: str) -> None:
    data = _data()
    data["model_list"][1]["base_url"] = url
    with pytest.raises(ConfigError) as caught:
        parse_router_config(data)
    message = str(caught.value)
    assert message.startswith("model_list[1].base_url: ")
    assert caught.value.path == "model_list[1].base_url"
    assert problem in message
    assert "hunter2" not in message


def test_credentials_in_a_base_url_say_what_to_do_instead() -> None:
    with pytest.raises(ConfigError) as caught:
        Deployment(model_name="g", model="m", base_url="https://me:sk-in-url@proxy.example/v1")
    message = str(caught.value)
    assert message.startswith("base_url: 'https://***@proxy.example/v1' carries credentials")
    assert "api_key" in message
    assert "params.extra_headers" in message
    assert "sk-in-url" not in message
    assert "me:" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:41234",
        "http://127.0.0.1:41234/v1/",
        "https://api.openai.com/v1",
        "HTTPS://Example.COM/openai",
        "https://my-resource.openai.azure.com",
        "http://[::1]:8000/v1",
        "http://localhost:11434",
        "https://gateway.example.com/@team/v1",
        "",
    ],
)
def test_base_urls_that_work_are_accepted(url: str) -> None:
    data = _data()
    data["model_list"][0]["base_url"] = url
    assert parse_router_config(data).model_list[0].base_url == url


def test_credential_params_never_show_in_a_repr_whichever_format_gave_them() -> None:
    secrets = {
        "aws_access_key_id": "AKIDPLAINTEXT1",
        "aws_secret_access_key": "plain-aws-secret-9f8e7d",
        "aws_session_token": "plain-session-token-1a2b3c",
    }
    deployment = Deployment(
        model_name="chat",
        model="m",
        provider="bedrock",
        params={**secrets, "aws_region_name": "us-east-1"},
    )
    shown = repr(deployment) + str(deployment) + repr(deployment.settings)
    for value in secrets.values():
        assert value not in shown
    for name, value in secrets.items():
        held = getattr(deployment.settings, name)
        assert isinstance(held, Secret)
        assert held.reveal() == value
    assert isinstance(deployment.settings, BedrockSettings)
    assert deployment.settings.aws_region_name == "us-east-1"
    assert deployment.params == {}


def test_deployments_that_differ_only_in_a_secret_param_keep_distinct_ids() -> None:
    keys = {"aws_access_key_id": "AKID", "aws_secret_access_key": "s"}
    one = Deployment(
        model_name="c",
        model="m",
        provider="bedrock",
        params={**keys, "aws_session_token": "tok-12345678"},
    )
    other = Deployment(
        model_name="c",
        model="m",
        provider="bedrock",
        params={**keys, "aws_session_token": "tok-87654321"},
    )
    assert one.id != other.id
