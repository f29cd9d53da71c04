"""The reservation estimate: exact integer micro-dollars, rounded up, from counted tokens."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config.router import Deployment
from turnout.governance.estimate import (
    DEFAULT_OUTPUT_TOKENS,
    UnpricedModel,
    estimate,
    estimate_tokens,
    exact_cost,
)
from turnout.tokens import estimate_prompt_tokens
from turnout.wire import Operation, Request

#: 400 characters: 100 tokens of text, plus 4 of framing.
MESSAGES = [{"role": "user", "content": "x" * 400}]
PROMPT = 104


def _request(**body: Any) -> Request:
    return Request(model="chat", body={"messages": MESSAGES, **body})


def _priced(input_price: float | None, output_price: float | None, **extra: Any) -> Deployment:
    return Deployment(
        model_name="chat",
        model="house-model",
        provider="openai-compatible",
        input_cost_per_token=input_price,
        output_cost_per_token=output_price,
        **extra,
    )


def test_prompt_tokens_are_counted_by_the_shared_counter() -> None:
    assert estimate_prompt_tokens("chat", {"messages": MESSAGES}) == PROMPT


def test_input_and_bounded_output_at_their_prices_times_n() -> None:
    deployment = _priced(3e-06, 1.5e-05)  # $3 and $15 per million tokens
    got = estimate(_request(max_tokens=1000, n=2), [deployment])
    # (104 x 3 + 1000 x 15) micro-dollars x 2
    assert got.cost == (PROMPT * 3 + 1000 * 15) * 2
    assert got.tokens == (PROMPT + 1000) * 2


def test_without_max_tokens_the_default_output_is_held() -> None:
    deployment = _priced(1e-06, 2e-06)
    got = estimate(_request(), [deployment])
    assert got.cost == PROMPT * 1 + DEFAULT_OUTPUT_TOKENS * 2
    assert estimate(_request(), [deployment], default_output_tokens=10).cost == PROMPT + 20
    newer = estimate(_request(max_completion_tokens=7), [deployment])
    assert newer.cost == PROMPT + 14


def test_the_models_output_bound_caps_the_hold() -> None:
    deployment = _priced(1e-06, 2e-06, context_window=PROMPT + 50)
    assert estimate(_request(max_tokens=100_000), [deployment]).cost == PROMPT + 50 * 2
    capped = estimate(_request(max_tokens=100_000), [deployment], max_output_tokens=30)
    assert capped.cost == PROMPT + 30 * 2


def test_fractions_of_a_micro_dollar_round_up_exactly() -> None:
    # 0.15 $/Mtok is 1.5e-07 $/token: 0.15 micro-dollars a token, a float with no exact form.
    deployment = _priced(1.5e-07, 6e-07)
    got = estimate(_request(max_tokens=1), [deployment])
    # 104 x 0.15 + 1 x 0.6 = 16.2 micro-dollars: 17, never 16 (a float sum gives 16.2000...03)
    assert got.cost == 17
    # 100 tokens at 0.28 micro-dollars are 28 exactly: 28 (floats make it 28.000000000000004)
    embedding = Request(model="e", body={"input": "y" * 400}, operation=Operation.EMBEDDING)
    assert 100 * 2.8e-07 * 1e6 > 28
    assert estimate(embedding, [_priced(2.8e-07, None)]).cost == 28


def test_the_most_expensive_candidate_counts() -> None:
    cheap, dear = _priced(1e-06, 1e-06), _priced(1e-06, 5e-06, context_window=10_000)
    got = estimate(_request(max_tokens=100), [cheap, dear])
    assert got.cost == PROMPT + 500
    assert estimate_tokens(_request(max_tokens=100), [cheap, dear]).total == PROMPT + 100


def test_list_prices_apply_to_deployments_that_name_none() -> None:
    listed = Deployment(model_name="chat", model="gpt-4o", provider="openai")
    # gpt-4o: $2.50 and $10 per million tokens
    assert estimate(_request(max_tokens=10), [listed]).cost == round(PROMPT * 2.5) + 100


def test_an_unpriced_model_is_refused_by_name() -> None:
    unpriced = _priced(None, None)
    with pytest.raises(UnpricedModel, match=r"'chat'.*'house-model'.*input_cost_per_token"):
        estimate(_request(), [_priced(1e-06, 1e-06), unpriced])
    # Rate limits need tokens only, which need no price.
    assert estimate_tokens(_request(max_tokens=5), [unpriced]).total == PROMPT + 5
    # One price known: the other counts as 0, as spend is charged.
    assert estimate(_request(max_tokens=5), [_priced(None, 1e-06)]).cost == 5
    assert estimate(_request(max_tokens=5), [_priced(0.0, 0.0)]).cost == 0


def test_choices_and_other_operations() -> None:
    deployment = _priced(1e-06, 1e-06)
    assert estimate(_request(max_tokens=10, best_of=3, n=2), [deployment]).cost == 3 * (PROMPT + 10)
    assert estimate(_request(max_tokens=10, n=True), [deployment]).cost == PROMPT + 10
    embedding = Request(model="e", body={"input": "y" * 40}, operation=Operation.EMBEDDING)
    assert estimate(embedding, [deployment]).cost == 10  # embeddings write no output
    with pytest.raises(ValueError, match="candidate"):
        estimate(_request(), [])


def test_exact_cost_of_usage() -> None:
    deployment = _priced(1.5e-07, 6e-07, cached_input_cost_per_token=7.5e-08)
    assert exact_cost(deployment, 104, 4) == 18
    # 100 prompt tokens of which 40 cached: 60 x 0.15 + 40 x 0.075 + 10 x 0.6 = 18
    assert exact_cost(deployment, 100, 10, cached_tokens=40) == 18
    assert exact_cost(deployment, 1, 0) == 1  # 0.15 rounds up
    assert exact_cost(_priced(None, None), 10, 10) is None
