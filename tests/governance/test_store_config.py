"""The ``store`` section, and LiteLLM's ``general_settings.database_url`` read into it."""

from __future__ import annotations

import msgspec
import pytest

from turnout.config.load import parse_config
from turnout.config.store import StoreConfig
from turnout.errors import ConfigError
from turnout.governance.sql.engine import store_url
from turnout.secrets import Secret

MODELS = {"model_list": [{"model_name": "chat", "provider": "openai", "model": "gpt-4o"}]}
LITELLM = {"model_list": [{"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o"}}]}


def test_without_a_store_section_a_config_loads_as_before_with_the_default_store() -> None:
    config = parse_config(MODELS, environ={})
    assert config.store == StoreConfig()
    assert config.store.url == "sqlite:///turnout.db"
    assert config.warnings == ()
    assert msgspec.structs.replace(config, store=StoreConfig()) == config


def test_the_store_section_is_read_with_its_password_and_pepper_kept_secret() -> None:
    config = parse_config(
        {
            **MODELS,
            "store": {
                "url": "postgresql://turnout:${DB_PASSWORD}@db.internal:5432/turnout",
                "pepper": "os.environ/KEY_PEPPER",
                "pool_size": 20,
            },
        },
        environ={"DB_PASSWORD": "hunter2", "KEY_PEPPER": "pepper"},
    )
    store = config.store
    assert store.url == "postgresql://turnout@db.internal:5432/turnout"
    assert store.password == Secret("hunter2")
    assert store.pepper == Secret("pepper")
    assert store.pool_size == 20
    assert "hunter2" not in repr(config) and "pepper'" not in repr(config)
    url = store_url(store.url, store.password)
    assert url.drivername == "postgresql+asyncpg"
    assert url.password == "hunter2"
    assert "hunter2" not in str(url)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ({"url": "mysql://db/x"}, r"^store\.url: 'mysql' is no store URL scheme"),
        ({"url": "turnout.db"}, r"^store\.url: "),
        ({"url": "sqlite:///:memory:"}, r"^store\.url: an in-memory SQLite database"),
        ({"pool_size": 0}, r"^store\.pool_size: Expected `int` >= 1"),
        ({"pepper": ""}, r"^store\.pepper: must not be empty"),
        ({"urls": "sqlite:///x"}, r"^store: Object contains unknown field `urls`"),
        ("sqlite:///x", r"^store: expected a mapping"),
    ],
)
def test_a_bad_store_section_names_the_field(store: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**MODELS, "store": store}, environ={})


def test_sqlite_and_postgres_urls_get_their_drivers() -> None:
    assert store_url("sqlite:///turnout.db").drivername == "sqlite+pysqlite"
    assert store_url("postgres://h/db").drivername == "postgresql+asyncpg"
    assert dict(store_url("postgresql://h/db?sslmode=require").query) == {"ssl": "require"}
    with pytest.raises(ValueError, match="mysql"):
        store_url("mysql://h/db")


def test_litellms_database_url_becomes_the_store_url_without_prismas_parameters() -> None:
    config = parse_config(
        {
            **LITELLM,
            "general_settings": {
                "master_key": "sk-1234",
                "database_url": "postgresql://llm:secret@db:5432/litellm"
                "?connection_limit=10&pool_timeout=30&sslmode=require",
            },
        },
        environ={},
    )
    assert config.store.url == "postgresql://llm@db:5432/litellm?sslmode=require"
    assert config.store.password == Secret("secret")
    assert config.warnings == (
        "general_settings.database_url: the URL's connection_limit parameter is Prisma's; ignored",
        "general_settings.database_url: the URL's pool_timeout parameter is Prisma's; ignored",
    )


def test_an_unset_database_url_variable_keeps_the_default_store_with_a_warning() -> None:
    config = parse_config(
        {**LITELLM, "general_settings": {"database_url": "os.environ/DATABASE_URL"}}, environ={}
    )
    assert config.store == StoreConfig()
    assert config.warnings == (
        "general_settings.database_url: ignored: environment variable DATABASE_URL is not set; "
        "the store stays at sqlite:///turnout.db",
    )
    resolved = parse_config(
        {**LITELLM, "general_settings": {"database_url": "os.environ/DATABASE_URL"}},
        environ={"DATABASE_URL": "postgresql://db/litellm"},
    )
    assert resolved.store.url == "postgresql://db/litellm"


def test_turnouts_own_store_section_wins_over_litellms_database_url() -> None:
    config = parse_config(
        {
            **LITELLM,
            "store": {"url": "sqlite:///governance.db"},
            "general_settings": {"database_url": "postgresql://db/litellm"},
        },
        environ={},
    )
    assert config.store.url == "sqlite:///governance.db"
    assert config.warnings == ("general_settings.database_url: ignored: store.url is set and wins",)


def test_a_bad_database_url_is_reported_at_litellms_path() -> None:
    with pytest.raises(ConfigError, match=r"^general_settings\.database_url: 'mysql' is no"):
        parse_config({**LITELLM, "general_settings": {"database_url": "mysql://db/x"}}, environ={})
