"""``/v1/messages/count_tokens``: counted by Anthropic when the model group can ask it, else by
turnout's own estimate.

Anthropic counts a request exactly, tools, images and thinking included, and clients such as
Claude Code size their context by that count. So when the group has a deployment that takes
Messages requests natively (`takes_messages`) and whose API counts tokens
(`turnout.providers.base.TokenCounter`), the caller's body goes to that deployment's own
``count_tokens``, with the caller's Anthropic headers and the deployment's key and model: the
first such deployment in the config's order that is not cooling down, then the next one if that
call fails. A count is advice, not an answer to route around: it is not retried further, spends
no budget, and never fails for an upstream that is down or refuses the key; the caller gets the
gateway's estimate (the one routing uses for context windows and token limits) instead. Only an
upstream's verdict that the request itself is malformed (a 400) reaches the caller, as it would
from Anthropic.

The answer says which count it is in ``x-turnout-token-count``: ``upstream`` or ``estimate``.
"""

from __future__ import annotations

import logging
from typing import Final

from turnout.errors import BadRequestError, ProviderError
from turnout.providers.anthropic.native import takes_messages
from turnout.providers.base import TokenCounter
from turnout.router.router import Router
from turnout.wire import Request

logger = logging.getLogger("turnout.gateway")

#: The header naming how the count was made.
COUNTED_BY_HEADER: Final = "x-turnout-token-count"
#: Deployments asked at most, one after the other.
_MOST_ASKED: Final = 2


async def count_input_tokens(router: Router, group: str, request: Request) -> tuple[int, str]:
    """`request`'s input tokens and how they were counted (``upstream`` or ``estimate``)."""
    candidates = [d for d in router.deployments() if d.model_name == group and takes_messages(d)]
    if candidates:
        cooling = {h.deployment_id for h in await router.health() if h.cooling_down}
        asked = 0
        for deployment in candidates:
            provider = router.provider_of(deployment)
            if deployment.id in cooling or not isinstance(provider, TokenCounter):
                continue
            asked += 1
            try:
                counted = await provider.count_tokens(deployment, request)
            except BadRequestError:
                raise  # the request itself is wrong: the caller must know, as from Anthropic
            except ProviderError as error:
                logger.info(
                    "count_tokens on %s failed (%s): %s",
                    deployment.name,
                    error.kind.value,
                    "asking the next deployment" if asked < _MOST_ASKED else "estimating",
                )
            else:
                if counted is not None:
                    return counted, "upstream"
            if asked >= _MOST_ASKED:
                break
    return request.prompt_tokens, "estimate"
