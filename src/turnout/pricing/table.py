"""The built-in list prices and context windows, per provider family, with their sources.

Figures are the providers' public pay-as-you-go list prices, written here per million tokens
(as the providers publish them) and stored per token. ``cached`` is the price of a prompt token
read from the provider's prompt cache (Anthropic: the cache-read price); ``window`` is the
published context window. A field no stored public page confirmed is None rather than guessed;
a model whose prices could not be confirmed is absent. Lookup rules live in
`turnout.pricing.lookup`.

Keys are lower-case model names without dated suffixes, region or vendor prefixes. A family's
table must not hold a key whose prices belong to another model that merely shares its prefix:
the lookup never lets ``gpt-4o`` stand in for ``gpt-4o-mini`` (see `turnout.pricing.lookup`).

Every figure was checked against a stored copy of a public page, named in a comment above its
block (with the date of the copy where the page shows one). Prices change: a deployment's own
``input_cost_per_token`` and the other fields always win over this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """List prices of one model, in US dollars per token, and its context window in tokens."""

    input: float
    output: float
    #: Per prompt token served from the provider's prompt cache (None: not published).
    cached_input: float | None = None
    #: Largest context, in tokens (None: not confirmed from a public page).
    context_window: int | None = None


def _m(
    input_per_mtok: float,
    output_per_mtok: float,
    cached_per_mtok: float | None = None,
    window: int | None = None,
) -> ModelPrice:
    cached = None if cached_per_mtok is None else _per_token(cached_per_mtok)
    return ModelPrice(_per_token(input_per_mtok), _per_token(output_per_mtok), cached, window)


def _per_token(per_mtok: float) -> float:
    # Rounded so that 0.80 per million reads back as 8e-07, not 8.000000000000001e-07.
    return round(per_mtok / MILLION, 15)


# --- OpenAI -------------------------------------------------------------------------------------
# Prices: https://developers.openai.com/api/docs/pricing as transcribed by
#   https://raw.githubusercontent.com/simonw/llm-prices/main/data/openai.json (GPT-4o/4.1/5 and
#   o-series rows) and https://github.com/api-evangelist/openai plans/openai-plans-pricing.yml
#   (read 2026-05-04: GPT-5.4, 5.4 mini, 5.4 nano, 5.5); GitHub's
#   https://github.com/github/docs data/tables/copilot/models-and-pricing.yml repeats GPT-5 mini,
#   GPT-5.4 family and GPT-5.5 at the same list prices.
# Official model pages (stored): developers.openai.com/api/docs/models/gpt-4.md (gpt-4 $30/$60,
#   8,192 window); /ko-KR/api/docs/models/gpt-4.1-nano ($0.10/$0.025/$0.40, 1,047,576 window);
#   /ko-KR/api/docs/models/gpt-4o-audio-preview (GPT-4o text tokens $2.50/$10, 128,000 window);
#   /api/docs/models/text-embedding-3-large.md ($0.13; the page compares text-embedding-3-small
#   at $0.02); /ko-KR/api/docs/models/gpt-5.4-pro (GPT-5.4 window 1,050,000; past 272K input
#   tokens a session is billed 2x input, 1.5x output: the table keeps the standard tier).
# gpt-4o-2024-05-13 ($5/$15): hex.pm openai_responses lib/responses/pricing.ex, "Source:
#   platform.openai.com/docs/pricing, last updated on 2025-06-03"; openrouter.ai agrees.
# Windows of gpt-4.1/-mini (1,047,576), gpt-4o/-mini (128,000), o4-mini (200,000), o1 (200K),
#   gpt-5-mini and gpt-5.4-mini (400,000): vercel.com/ai-gateway/models/*.md, which cite
#   platform.openai.com/docs/models; o3-mini (200,000): huggingface.co SE-Arena
#   context_window.json. text-embedding-ada-002 ($0.10) and the embeddings' 8,191-token input
#   limit: docs.praison.ai/docs/embeddings/providers/openai.
# Left out: o3 (stored sources disagree: $10/$40 vs $2/$8 input/output; no stored official page).
OPENAI: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "gpt-4": _m(30.0, 60.0, None, 8_192),
        "gpt-4o": _m(2.50, 10.0, 1.25, 128_000),
        "gpt-4o-2024-05-13": _m(5.0, 15.0, None, 128_000),
        "gpt-4o-mini": _m(0.15, 0.60, 0.075, 128_000),
        "gpt-4.1": _m(2.0, 8.0, 0.50, 1_047_576),
        "gpt-4.1-mini": _m(0.40, 1.60, 0.10, 1_047_576),
        "gpt-4.1-nano": _m(0.10, 0.40, 0.025, 1_047_576),
        "o1": _m(15.0, 60.0, 7.50, 200_000),
        "o3-mini": _m(1.10, 4.40, 0.55, 200_000),
        "o4-mini": _m(1.10, 4.40, 0.275, 200_000),
        "gpt-5": _m(1.25, 10.0, 0.125),
        "gpt-5-mini": _m(0.25, 2.0, 0.025, 400_000),
        "gpt-5-nano": _m(0.05, 0.40, 0.005),
        "gpt-5.1": _m(1.25, 10.0, 0.125),
        "gpt-5.4": _m(2.50, 15.0, 0.25, 1_050_000),
        "gpt-5.4-mini": _m(0.75, 4.50, 0.075, 400_000),
        "gpt-5.4-nano": _m(0.20, 1.25, 0.02),
        "gpt-5.5": _m(5.0, 30.0, 0.50),
        "text-embedding-3-small": _m(0.02, 0.0, None, 8_191),
        "text-embedding-3-large": _m(0.13, 0.0, None, 8_191),
        "text-embedding-ada-002": _m(0.10, 0.0, None, 8_191),
    }
)

# --- Azure OpenAI -------------------------------------------------------------------------------
# Global (standard) deployment prices. The official page
# (azure.microsoft.com/pricing/details/cognitive-services/openai-service/) is not stored; these
# figures come from pages quoting it: redresscompliance.com/azure-openai-enterprise-pricing-guide
# (GPT-4o $2.50/$10, cached $1.25; GPT-4o mini $0.15/$0.60, cached $0.075),
# explore.oreate.ai/posts/breaking-down-gpt41-pricing-on-azure-openai-service (GPT-4.1 global
# $2/$0.50/$8, mini $0.40/$0.10/$1.60, nano $0.10/$0.40), amnic.com (token rates match OpenAI's).
# Windows as for OpenAI. GPT-4.1 nano's cached price is quoted as $0.03 there, not OpenAI's
# $0.025, so it is left unset. Azure deployments are usually named by the customer: prices apply
# only when the deployment's ``model`` is one of these model names.
AZURE: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "gpt-4o": OPENAI["gpt-4o"],
        "gpt-4o-mini": OPENAI["gpt-4o-mini"],
        "gpt-4.1": OPENAI["gpt-4.1"],
        "gpt-4.1-mini": OPENAI["gpt-4.1-mini"],
        "gpt-4.1-nano": _m(0.10, 0.40, None, 1_047_576),
    }
)

# --- Anthropic ----------------------------------------------------------------------------------
# Prices (base input, cache hits, output): https://platform.claude.com/docs/en/docs/about-claude/
#   pricing (Opus 4.6 ... Haiku 3) and https://platform.claude.com/docs/en/about-claude/pricing
#   (a later copy adding Opus 4.7 and 4.8 at $5/$0.50/$25); Claude Sonnet 3.5 from the earlier
#   copy https://docs.anthropic.com/en/docs/about-claude/pricing (listed "deprecated").
# Windows: model pages platform.claude.com/docs/en/models/{opus-4-8,opus-4-6}/overview.md
#   (1M tokens), {opus-4-5,sonnet-4-5}/overview.md (200K tokens); 200K for the Claude 3 and 3.x
#   models, Opus 4/4.1, Sonnet 4 and Haiku 4.5: deploybase.ai/articles/claude-api-pricing
#   ("as of March 21, 2026") and claudepricing.com/api. Sonnet 4 and 4.5 also offer a 1M window
#   in beta at long-context prices: the table keeps the standard 200K.
# Left out: Sonnet 4.6 and Opus 4.7 windows (stored sources disagree: 200K vs 1M).
ANTHROPIC: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "claude-opus-4-8": _m(5.0, 25.0, 0.50, 1_000_000),
        "claude-opus-4-7": _m(5.0, 25.0, 0.50),
        "claude-opus-4-6": _m(5.0, 25.0, 0.50, 1_000_000),
        "claude-opus-4-5": _m(5.0, 25.0, 0.50, 200_000),
        "claude-opus-4-1": _m(15.0, 75.0, 1.50, 200_000),
        "claude-opus-4": _m(15.0, 75.0, 1.50, 200_000),
        "claude-opus-4-0": _m(15.0, 75.0, 1.50, 200_000),
        "claude-sonnet-4-6": _m(3.0, 15.0, 0.30),
        "claude-sonnet-4-5": _m(3.0, 15.0, 0.30, 200_000),
        "claude-sonnet-4": _m(3.0, 15.0, 0.30, 200_000),
        "claude-sonnet-4-0": _m(3.0, 15.0, 0.30, 200_000),
        "claude-3-7-sonnet": _m(3.0, 15.0, 0.30, 200_000),
        "claude-3-5-sonnet": _m(3.0, 15.0, 0.30, 200_000),
        "claude-haiku-4-5": _m(1.0, 5.0, 0.10, 200_000),
        "claude-3-5-haiku": _m(0.80, 4.0, 0.08, 200_000),
        "claude-3-opus": _m(15.0, 75.0, 1.50, 200_000),
        "claude-3-haiku": _m(0.25, 1.25, 0.03, 200_000),
    }
)

# --- Google Gemini (Gemini Developer API, paid tier) --------------------------------------------
# https://ai.google.dev/gemini-api/docs/pricing as transcribed verbatim by
#   https://github.com/api-evangelist/gemini plans/gemini-plans-pricing.yml (page read
#   2026-09-20: 2.5 Pro input "$1.25, prompts <= 200k tokens" / "$2.50, prompts > 200k tokens";
#   2.5 Flash input $0.30; 2.5 Flash-Lite output $0.40) and by simonw/llm-prices
#   data/google.json (the other prices and the context-caching prices).
# Gemini 2.5 Pro is tiered: the table keeps the prompts <= 200k tier ($1.25 in, $10 out,
#   $0.125 cached); longer prompts cost $2.50/$15. Gemini 1.5 Pro/Flash: the <= 128k tier.
# Windows: ai.google.dev/gemini-api/docs/models/gemini-2.0-flash and gemini-2.0-flash-lite
#   (input token limit 1,048,576); docs.cloud.google.com .../models/gemini/2-5-pro (1,048,576);
#   gemini-embedding-001 ($0.15, 2,048 input tokens): getmaxim.ai llm-cost-calculator/gemini.
# Left out: text-embedding-004 (no per-token price published); the 2.5 Flash, Flash-Lite and
#   1.5 windows (not confirmed on a stored page); 2.0 Flash cached prices.
GEMINI: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "gemini-2.5-pro": _m(1.25, 10.0, 0.125, 1_048_576),
        "gemini-2.5-flash": _m(0.30, 2.50, 0.03),
        "gemini-2.5-flash-lite": _m(0.10, 0.40, 0.01),
        "gemini-2.0-flash": _m(0.10, 0.40, None, 1_048_576),
        "gemini-2.0-flash-lite": _m(0.075, 0.30, None, 1_048_576),
        "gemini-1.5-pro": _m(1.25, 5.0),
        "gemini-1.5-flash": _m(0.075, 0.30),
        "gemini-embedding-001": _m(0.15, 0.0, None, 2_048),
    }
)

# --- Amazon Bedrock (on-demand) -----------------------------------------------------------------
# Anthropic models (anthropic.claude-*, with or without a us./eu./apac./global. inference
#   profile prefix) use the Anthropic table: Bedrock lists Claude at Anthropic's prices
#   (inventivehq.com/blog/aws-bedrock-pricing-guide: "Claude pricing on Bedrock matches direct
#   Anthropic API pricing"; deploybase.ai/articles/amazon-bedrock-pricing, "AWS Bedrock pricing
#   page (March 21, 2026)", shows the same figures). https://aws.amazon.com/bedrock/pricing/ is
#   stored but without its price tables.
# Amazon Nova: simonw/llm-prices data/amazon.json; Nova Pro $0.80/$3.20 also
#   swfte.com/de/blog/amazon-nova-pro-pricing (May 2026), Nova Micro $0.000035/$0.00014 per 1K
#   techdailyfeed.com (quoting the Bedrock page). Titan Text Embeddings V2 $0.02: inventivehq.
# Left out: meta.llama3-* (stored sources disagree, e.g. Llama 3 70B $2.65/$3.50 vs $0.99/$0.99),
#   cohere.embed-* (no price found), every Nova window, the regional-endpoint premium AWS charges
#   on newer Claude models outside cross-region (geo/global) profiles.
BEDROCK: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "amazon.nova-micro": _m(0.035, 0.14),
        "amazon.nova-lite": _m(0.06, 0.24),
        "amazon.nova-pro": _m(0.80, 3.20),
        "amazon.nova-premier": _m(2.50, 12.50),
        "amazon.titan-embed-text-v2": _m(0.02, 0.0),
    }
)

# --- Groq ---------------------------------------------------------------------------------------
# groq.com/pricing and console.groq.com/docs/models are not stored; the figures come from pages
#   quoting them: braintrust-proxy issues #479/#566/#925 ("Groq models page and pricing page both
#   show $0.15/$0.60" for openai/gpt-oss-120b, 131,072 input tokens), docs.rs aicost
#   data_groq.rs and tessl.io groq-cost-tuning (llama-3.1-8b-instant $0.05/$0.08,
#   llama-3.3-70b-versatile $0.59/$0.79, llama-4-scout $0.11/$0.34).
# Left out: gpt-oss-20b (one source only), Llama windows, cached prices (not published).
GROQ: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "llama-3.3-70b-versatile": _m(0.59, 0.79),
        "llama-3.1-8b-instant": _m(0.05, 0.08),
        "llama-4-scout-17b-16e-instruct": _m(0.11, 0.34),
        "gpt-oss-120b": _m(0.15, 0.60, None, 131_072),
    }
)

# --- Mistral ------------------------------------------------------------------------------------
# Prices: simonw/llm-prices data/mistral.json (from mistral.ai/pricing); codestral ($0.30/$0.90,
#   256K) and magistral-medium ($2/$5, 128K) also mastra.ai/models/providers/mistral.md.
# Windows: docs.mistral.ai/guides/model-selection (codestral-2508 256k, magistral-medium-2509
#   128k) and docs.mistral.ai/getting-started/models/ (Ministral 3B/8B 24.10: 128k); Mistral
#   Small 3.1 (2503) 128k: aspire.dev GitHub Models catalogue.
# Only dated ids are listed: the ``-latest`` aliases move to new models at new prices.
# Left out: mistral-medium-2508 (no stored price), mistral-large-2512 and later (no stored price),
#   the mistral-large-2411 and open-mistral-nemo windows.
MISTRAL: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "mistral-large-2411": _m(2.0, 6.0),
        "mistral-medium-2505": _m(0.40, 2.0),
        "mistral-small-2503": _m(0.10, 0.30, None, 128_000),
        "magistral-medium-2509": _m(2.0, 5.0, None, 128_000),
        "codestral-2508": _m(0.30, 0.90, None, 256_000),
        "ministral-8b-2410": _m(0.10, 0.10, None, 128_000),
        "ministral-3b-2410": _m(0.04, 0.04, None, 128_000),
        "open-mistral-nemo": _m(0.15, 0.15),
    }
)

# --- DeepSeek -----------------------------------------------------------------------------------
# Left out entirely. The stored official page (api-docs.deepseek.com/quick_start/
#   pricing-details-usd: deepseek-chat $0.27 in / $0.07 cache hit / $1.10 out, 64K) is an early
#   2025 copy; later stored pages show other prices for the same aliases (DeepSeek-V3.2 at
#   $0.28/$0.028/$0.42 with 128K, then DeepSeek-V4). deepseek-chat and deepseek-reasoner are
#   aliases that move to new models at new prices, so no figure can be trusted for them.
DEEPSEEK: Mapping[str, ModelPrice] = MappingProxyType({})

# --- Together AI --------------------------------------------------------------------------------
# together.ai/pricing is not stored. getmaxim.ai bifrost together_ai pages
#   (Meta-Llama-3.1-70B-Instruct-Turbo $0.88/$0.88); braintrust-proxy issue #566 ("Together AI
#   serverless models — openai/gpt-oss-120b listed at $0.15 input / $0.60 output").
# Keys are Together ids without their organisation prefix (meta-llama/, openai/).
TOGETHER: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "meta-llama-3.1-70b-instruct-turbo": _m(0.88, 0.88),
        "gpt-oss-120b": _m(0.15, 0.60),
    }
)

# --- Fireworks AI -------------------------------------------------------------------------------
# fireworks.ai/pricing is not stored. lava.so/docs/gateway/providers/fireworks (per-1M prices:
#   llama-v3p3-70b-instruct $0.90/$0.90, gpt-oss-120b $0.15/$0.60), lava.so/docs/reference/
#   providers/fireworks (llama-v3p3-70b-instruct 128K), mastra.ai/models/providers/fireworks-ai
#   (gpt-oss-120b 131K $0.15/$0.60, deepseek-v3-0324 160K $0.90/$0.90).
# Keys are the last part of accounts/fireworks/models/<name>.
# Left out: deepseek-v3p1/v3p2 (sources disagree on the output price).
FIREWORKS: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "llama-v3p3-70b-instruct": _m(0.90, 0.90, None, 128_000),
        "gpt-oss-120b": _m(0.15, 0.60, None, 131_072),
        "deepseek-v3-0324": _m(0.90, 0.90, None, 160_000),
    }
)

#: Every family's table, by family name.
FAMILIES: Mapping[str, Mapping[str, ModelPrice]] = MappingProxyType(
    {
        "openai": OPENAI,
        "azure": AZURE,
        "anthropic": ANTHROPIC,
        "gemini": GEMINI,
        "bedrock": BEDROCK,
        "groq": GROQ,
        "mistral": MISTRAL,
        "deepseek": DEEPSEEK,
        "together": TOGETHER,
        "fireworks": FIREWORKS,
    }
)
