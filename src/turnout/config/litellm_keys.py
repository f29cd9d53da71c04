"""The keys of a LiteLLM config.yaml: which turnout reads and into what, which it ignores on
purpose and why, and the names a misspelled key is checked against (`misspelling`).

`turnout.config.litellm` converts with these tables; keeping them apart keeps the converter
about conversion, and lets the documentation's table be checked against them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Final

#: Top-level sections only a LiteLLM config has.
LITELLM_SECTIONS: Final = (
    "router_settings",
    "litellm_settings",
    "general_settings",
    "environment_variables",
    "credential_list",
)

#: LiteLLM's provider prefixes -> turnout's provider names.
PROVIDERS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "openai_like": "openai",
    "custom_openai": "openai",
    "azure": "azure",
    "azure_ai": "azure",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai": "gemini",
    "bedrock": "bedrock",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "hosted_vllm": "vllm",
    "vllm": "vllm",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}

#: ``litellm_params`` keys that are deployment fields in turnout.
DEPLOYMENT_FIELDS: Final[Mapping[str, str]] = {
    "api_key": "api_key",
    "api_base": "base_url",
    "base_url": "base_url",
    "api_version": "api_version",
    "rpm": "rpm",
    "tpm": "tpm",
    "weight": "weight",
    "order": "priority",
    "max_parallel_requests": "max_parallel_requests",
    "input_cost_per_token": "input_cost_per_token",
    "output_cost_per_token": "output_cost_per_token",
    "tags": "tags",
    "cooldown_time": "cooldown_time",
    "drop_params": "drop_params",
    # turnout's own, for what a deployment lacks beyond its provider's declaration.
    "unsupported_params": "unsupported_params",
    "supported_params": "supported_params",
}

#: Request parameters sent upstream with every request of the deployment.
REQUEST_PARAMS: Final = frozenset(
    {
        "temperature",
        "max_tokens",
        "top_p",
        "seed",
        "stop",
        "frequency_penalty",
        "presence_penalty",
        "response_format",
        "user",
    }
)

#: Why particular ``litellm_params`` keys are ignored.
DEPLOYMENT_REASONS: Final[Mapping[str, str]] = {
    "max_retries": "turnout retries on the group's deployments instead (num_retries)",
    "tag_regex": "not supported yet: list the deployment's tags",
    "region_name": "region filtering is not supported yet",
    "max_budget": "budgets are not supported yet",
    "budget_duration": "budgets are not supported yet",
}

#: ``model_info`` keys that are deployment fields in turnout.
MODEL_INFO_FIELDS: Final[Mapping[str, str]] = {
    "id": "id",
    "max_input_tokens": "context_window",
    "input_cost_per_token": "input_cost_per_token",
    "output_cost_per_token": "output_cost_per_token",
}

#: ``model_info`` capability flags, as the request parameters they speak of: false adds the
#: parameter to the deployment's ``unsupported_params``, true to its ``supported_params``.
MODEL_INFO_SUPPORTS: Final[Mapping[str, str]] = {
    "supports_function_calling": "tools",
    "supports_response_schema": "response_format.json_schema",
}

#: Why particular ``model_info`` keys are ignored.
MODEL_INFO_REASONS: Final[Mapping[str, str]] = {
    "mode": "turnout tells chat from embeddings by the route a request comes in on",
    "base_model": (
        "turnout prices by the deployment's model: set input_cost_per_token and "
        "output_cost_per_token for a model its price list does not know"
    ),
    "max_tokens": "turnout reads the context window from max_input_tokens",
}

#: ``credential_values`` keys that are deployment fields in turnout.
CREDENTIAL_FIELDS: Final[Mapping[str, str]] = {
    "api_key": "api_key",
    "api_base": "base_url",
    "base_url": "base_url",
    "api_version": "api_version",
}

#: Routing keys LiteLLM reads from ``litellm_settings`` when ``router_settings`` lacks them.
SHARED_KEYS: Final = frozenset(
    {
        "num_retries",
        "allowed_fails",
        "cooldown_time",
        "fallbacks",
        "default_fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
    }
)

#: Simple router settings: LiteLLM key -> (turnout section, field).
SETTINGS: Final[Mapping[str, tuple[str, str]]] = {
    "routing_strategy": ("routing", "strategy"),
    "num_retries": ("retries", "num_retries"),
    "allowed_fails": ("health", "allowed_fails"),
    "cooldown_time": ("health", "cooldown_time"),
    "disable_cooldowns": ("health", "disable_cooldowns"),
    "max_fallbacks": ("fallbacks", "max_depth"),
}

#: Fallback lists: LiteLLM key -> the kind of failure in turnout's ``fallbacks``.
FALLBACKS: Final[Mapping[str, str]] = {
    "fallbacks": "general",
    "context_window_fallbacks": "context_window",
    "content_policy_fallbacks": "content_policy",
}

_NO_REDIS = (
    "turnout shares routing state in Redis from router_settings' redis_url, or redis_host, "
    "redis_port and redis_password (see state: in turnout's format); it caches no responses"
)
_NO_CACHE = "turnout does not cache responses"
_NO_CALLBACKS = (
    "LiteLLM callbacks are not supported: turnout exports Prometheus metrics at /metrics"
)
_NO_BUDGETS = "budgets are not supported yet"

#: Why particular ``router_settings`` / ``litellm_settings`` keys are ignored.
SETTINGS_REASONS: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("redis_db",),
        "give the database in the URL: router_settings.redis_url: redis://host:6379/1",
    ),
    "cache_kwargs": _NO_REDIS,
    "cache_responses": _NO_CACHE,
    "caching_groups": _NO_CACHE,
    "cache": _NO_CACHE,
    "cache_params": _NO_CACHE,
    "enable_pre_call_checks": (
        "nothing to enable: turnout always checks context windows, rpm and tpm before it picks"
    ),
    "retry_after": (
        "turnout waits between retries with exponential backoff and full jitter "
        "(retries.base_delay, retries.max_delay) and honours a provider's Retry-After; "
        "there is no fixed minimum"
    ),
    "retry_policy": "per-error retry counts are not supported: num_retries applies to all",
    "model_group_retry_policy": "per-group retry policies are not supported",
    "allowed_fails_policy": "per-error allowed fails are not supported: allowed_fails applies",
    "provider_budget_config": _NO_BUDGETS,
    "max_budget": _NO_BUDGETS,
    "timeout": (
        "LiteLLM reads request_timeout here: set request_timeout, or router_settings.timeout"
    ),
    "stream_timeout": "LiteLLM's router reads stream_timeout from router_settings",
    "default_max_parallel_requests": "set max_parallel_requests per deployment",
    "callbacks": _NO_CALLBACKS,
    "success_callback": _NO_CALLBACKS,
    "failure_callback": _NO_CALLBACKS,
    "service_callbacks": _NO_CALLBACKS,
    "set_verbose": "use server.log_level",
    "json_logs": "use server.log_level",
}

GENERAL_REASON = "a LiteLLM proxy setting turnout does not have"
UNKNOWN_REASON = "turnout has no equivalent"

# -- the names a misspelled key is checked against -----------------------------------------------
#
# LiteLLM has many keys turnout has no use for; each list below holds every key its section
# documents (mapped or not), so that a key close to one of them and not among them is a
# misspelling (an error with a did-you-mean), while a key far from all of them is LiteLLM's
# (or a newer release's) and is ignored with a warning.

#: Top-level keys: LiteLLM's sections, the proxy's other sections, and turnout's own.
TOP_LEVEL_KEYS: Final = frozenset(
    {
        *LITELLM_SECTIONS,
        "model_list",
        "include",
        "guardrails",
        "mcp_servers",
        "mcp_aliases",
        "vector_store_registry",
        "files_settings",
        "finetune_settings",
        "assistant_settings",
        "search_tools",
        "prompts",
        "callback_settings",
        # turnout's own, allowed beside LiteLLM's sections.
        "server",
        "store",
        "timeout",
        "learned_timeouts",
    }
)

#: Keys of one ``model_list`` entry.
ENTRY_KEYS: Final = frozenset({"model_name", "litellm_params", "model_info"})

#: ``litellm_params`` keys LiteLLM documents that turnout reads some other way or not at all.
OTHER_DEPLOYMENT_KEYS: Final = frozenset(
    {
        "model",
        "custom_llm_provider",
        "litellm_credential_name",
        "additional_drop_params",
        "itpm",
        "otpm",
        "input_cost_per_second",
        "output_cost_per_second",
        "mock_response",
        "use_in_pass_through",
        "use_litellm_proxy",
        "merge_reasoning_content_in_choices",
        "model_info",
        "configurable_clientside_auth_params",
        "num_retries",
        "stream",
        "top_k",
        "n",
        "logprobs",
        "top_logprobs",
        "max_completion_tokens",
        "reasoning_effort",
        "thinking",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logit_bias",
        "modalities",
        "audio",
        "dimensions",
        "encoding_format",
        "metadata",
        "headers",
        "api_type",
        "tenant_id",
        "client_id",
        "client_secret",
        "azure_username",
        "azure_password",
        "azure_scope",
        "azure_ad_token_provider",
        "vertex_credentials",
        "vertex_ai_project",
        "vertex_ai_location",
        "vertex_ai_credentials",
        "aws_profile_name",
        "aws_role_name",
        "aws_session_name",
        "aws_web_identity_token",
        "aws_sts_endpoint",
        "aws_external_id",
        "watsonx_region_name",
        "input_cost_per_pixel",
        "output_cost_per_pixel",
        "input_cost_per_character",
        "output_cost_per_character",
        "litellm_trace_id",
        "litellm_metadata",
        "cache_control_injection_points",
        "prompt_id",
        "prompt_variables",
        "vector_store_ids",
        "hf_model_name",
        "custom_tokenizer",
        "base_model",
        "auto_router_config_path",
        "auto_router_config",
        "auto_router_default_model",
        "auto_router_embedding_model",
        "guardrails",
    }
)

#: ``model_info`` keys LiteLLM documents; any ``supports_*`` flag is LiteLLM's too.
MODEL_INFO_KEYS: Final = frozenset(
    {
        "id",
        "mode",
        "base_model",
        "max_tokens",
        "max_input_tokens",
        "max_output_tokens",
        "input_cost_per_token",
        "output_cost_per_token",
        "input_cost_per_second",
        "output_cost_per_second",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
        "supported_environments",
        "tier",
        "team_id",
        "team_public_model_name",
        "db_model",
        "description",
        "access_groups",
        "health_check_model",
        "health_check_timeout",
        "metadata",
        "litellm_provider",
        "key",
        "supported_openai_params",
        "direct_access",
    }
)

#: ``router_settings`` and ``litellm_settings`` keys LiteLLM documents, beyond those turnout
#: maps (`SETTINGS`, `FALLBACKS`...) or explains (`SETTINGS_REASONS`).
OTHER_SETTINGS_KEYS: Final = frozenset(
    {
        "request_timeout",
        "drop_params",
        "modify_params",
        "default_fallbacks",
        "routing_strategy_args",
        "model_group_alias",
        "enable_tag_filtering",
        "tag_filtering_match_any",
        "optional_pre_call_checks",
        "deployment_affinity_ttl_seconds",
        "default_priority",
        "polling_interval",
        "client_ttl",
        "enable_health_check_routing",
        "health_check_staleness_threshold",
        "health_check_ignore_transient_errors",
        "ignore_invalid_deployments",
        "redis_url",
        "redis_host",
        "redis_port",
        "redis_password",
        "turn_off_message_logging",
        "redact_user_api_key_info",
        "redact_messages_in_exceptions",
        "langfuse_default_tags",
        "enable_preview_features",
        "force_ipv4",
        "ssl_verify",
        "telemetry",
        "return_response_headers",
        "default_team_settings",
        "default_key_generate_params",
        "upperbound_key_generate_params",
        "key_generation_settings",
        "default_internal_user_params",
        "max_internal_user_budget",
        "internal_user_budget_duration",
        "max_end_user_budget",
        "budget_duration",
        "disable_end_user_cost_tracking",
        "disable_end_user_cost_tracking_prometheus_only",
        "enable_json_schema_validation",
        "disable_add_transform_inline_image_block",
        "use_client_credentials_pass_through_routes",
        "callback_settings",
        "service_callback",
        "guardrails",
        "mcp_aliases",
        "cache_responses",
        "enable_loadbalancing_on_batch_endpoints",
        "model_group_retry_policy",
        "enable_redis_auth_cache",
        "disable_token_counter",
        "default_redis_batch_cache_expiry",
        "enable_caching_on_provider_specific_optional_params",
        "disable_aiohttp_transport",
        "log_raw_request_response",
        "global_disable_no_log_param",
        "public_teams",
        "default_max_internal_user_budget",
        "ssl_certificate",
        "max_end_user_budget_id",
        "num_retries_per_request",
        "request_timeout_seconds",
        "disable_streaming_logging",
        "prometheus_initialize_budget_metrics",
        "datadog_params",
        "logging_callback_params",
        "check_provider_endpoint",
        "extra_spend_tag_headers",
    }
)

#: ``general_settings`` keys LiteLLM documents (turnout reads ``master_key``, ``database_url``
#: and ``fail_closed_budget_enforcement``).
GENERAL_KEYS: Final = frozenset(
    {
        "master_key",
        "database_url",
        "fail_closed_budget_enforcement",
        "database_connection_pool_limit",
        "database_connection_timeout",
        "database_args",
        "proxy_batch_write_at",
        "proxy_budget_rescheduler_min_time",
        "proxy_budget_rescheduler_max_time",
        "disable_spend_logs",
        "disable_spend_updates",
        "disable_error_logs",
        "disable_adding_master_key_hash_to_db",
        "disable_reset_budget",
        "disable_retry_on_max_parallel_request_limit_error",
        "disable_master_key_return",
        "use_redis_transaction_buffer",
        "allow_requests_on_db_unavailable",
        "max_parallel_requests",
        "global_max_parallel_requests",
        "max_request_size_mb",
        "max_response_size_mb",
        "background_health_checks",
        "health_check_interval",
        "health_check_details",
        "use_shared_health_check",
        "store_model_in_db",
        "store_prompts_in_spend_logs",
        "supported_db_objects",
        "alerting",
        "alerting_threshold",
        "alerting_args",
        "alert_types",
        "alert_to_webhook_url",
        "spend_report_frequency",
        "custom_auth",
        "custom_auth_settings",
        "custom_key_generate",
        "custom_sso",
        "allowed_routes",
        "admin_only_routes",
        "public_routes",
        "enable_jwt_auth",
        "litellm_jwtauth",
        "litellm_key_header_name",
        "user_header_name",
        "user_api_key_cache_ttl",
        "enforce_user_param",
        "enable_oauth2_auth",
        "enable_oauth2_proxy_auth",
        "allowed_ips",
        "allowed_origins",
        "infer_model_from_keys",
        "key_management_system",
        "key_management_settings",
        "use_google_kms",
        "use_azure_key_vault",
        "pass_through_endpoints",
        "forward_openai_org_id",
        "forward_client_headers_to_llm_api",
        "embedding_model",
        "ui_access_mode",
        "disable_prisma_schema_update",
        "service_account_settings",
        "moderation_model",
        "enable_public_model_hub",
        "maximum_spend_logs_retention_period",
        "maximum_spend_logs_retention_interval",
        "litellm_license",
        "otel",
        "image_generation_model",
        "completion_model",
        "enforced_params",
        "reject_clientside_metadata_tags",
        "mcp_client_side_auth_header_name",
    }
)

#: ``routing_strategy_args`` keys LiteLLM documents.
STRATEGY_ARGS: Final = frozenset({"ttl", "lowest_latency_buffer", "max_latency_list_size"})


def misspelling(key: object, known: Iterable[str]) -> str | None:
    """The known key `key` most likely misspells, or None when it is known or close to none.

    The cutoff is high (0.8 of difflib's ratio): a transposed, doubled or dropped letter in a
    name of six or more is caught; a different word is not taken for a typo.
    """
    names = set(known)
    if not isinstance(key, str) or key in names:
        return None
    close = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.8)
    return close[0] if close else None
