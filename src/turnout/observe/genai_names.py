"""turnout's names in the OpenTelemetry GenAI conventions (v1.41): operations and providers.

Shared by the spans and the GenAI metrics (OpenTelemetry's and the Prometheus ones), so a
dashboard joins them on the same values. Plain functions over strings: no OpenTelemetry import.
"""

from __future__ import annotations

from typing import Final

#: `turnout.wire.Operation` values -> ``gen_ai.operation.name``.
OPERATIONS: Final = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
}

#: Provider registry names -> ``gen_ai.provider.name`` where the conventions name one; other
#: providers keep their own registry name.
PROVIDERS: Final = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_anthropic": "gcp.vertex_ai",
    "groq": "groq",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "xai": "x_ai",
    "perplexity": "perplexity",
}


def operation_name(operation: str) -> str:
    return OPERATIONS.get(operation, operation)


def provider_name(provider: str) -> str:
    return PROVIDERS.get(provider, provider)


#: Seconds, the conventions' advice for ``gen_ai.client.operation.duration`` and
#: ``gen_ai.client.operation.time_to_first_chunk``.
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
#: Tokens, the conventions' advice for ``gen_ai.client.token.usage``.
TOKEN_BUCKETS: Final = (
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
    4194304.0, 16777216.0, 67108864.0,
)  # fmt: skip
