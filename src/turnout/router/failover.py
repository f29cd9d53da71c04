"""Continuing a broken stream: choosing the deployment, asking it, opening the continuation.

The pure parts (what the caller saw, the continuation request, stitching the chunks on) live in
`turnout.router.continuation`; this module does the routing and I/O, over the dispatch seam.
"""

from __future__ import annotations

from collections.abc import Iterator

from turnout.config.router import Deployment
from turnout.errors import BadRequestError, TurnoutError, fallback_kind
from turnout.observe.events import StreamFailover
from turnout.providers.capabilities import Capabilities
from turnout.router.attempt import Attempt, Call, Reason, Run
from turnout.router.continuation import added_prompt_tokens, continuation_request
from turnout.router.dispatch import Dispatch
from turnout.router.runtime import ConfigBundle
from turnout.router.segment import Segment
from turnout.router.transcript import Transcript

#: Continuations tried for one break, across the groups of the chain.
MAX_TRIES = 3


async def continue_stream(
    dispatch: Dispatch, failed: Attempt, transcript: Transcript, error: TurnoutError
) -> Segment | TurnoutError | None:
    """Open a continuation of a broken stream on another deployment: of its own group first,
    then of the groups its fallbacks name for the failure, in the order whole requests fall
    back. Else the error of the last continuation tried, or None when none could be tried (no
    deployment anywhere, or the budget, the deadline or a tool call forbid it)."""
    run = failed.run
    if transcript.in_tool_call or transcript.several_choices:
        return None
    exclude = {a.deployment_id for a in run.attempts if a.error is not None}
    refused: TurnoutError | None = None
    clock = dispatch.clock
    tries = 0
    for group in fallback_chain(run, failed.group, error):
        retry_without_prefill: Deployment | None = None
        while tries < MAX_TRIES:
            now = clock.now()
            if now >= run.deadline or not dispatch.spend_retry(run, group):
                return refused
            if retry_without_prefill is not None:
                choice = await dispatch.start(
                    run, group, only=retry_without_prefill, reason=Reason.FAILOVER
                )
                prefill, retry_without_prefill = False, None
            else:
                choice = await dispatch.start(
                    run, group, exclude, time_left=run.deadline - now, reason=Reason.FAILOVER
                )
                if choice.deployment is None:
                    break  # nothing left in this group: the next one in the chain
                exclude.add(choice.deployment.id)
                prefill = _capabilities(run.bundle, choice.deployment).assistant_prefill
            tries += 1
            attempt = choice.attempt
            if attempt is None:
                continue  # its breaker's last probe slot went to a concurrent request
            segment = await _open_continuation(
                dispatch, failed, attempt, transcript, error, prefill
            )
            if isinstance(segment, Segment):
                return segment
            if isinstance(segment, TurnoutError):
                refused = segment
                if prefill and isinstance(segment, BadRequestError):
                    # The target refused the prefill itself: ask it again, by instruction.
                    retry_without_prefill = attempt.deployment
        if tries >= MAX_TRIES:
            break
    return refused


def fallback_chain(run: Run, group: str, error: TurnoutError) -> Iterator[str]:
    """`group`, then the groups a whole request failing with `error` would fall back to
    (the kind's list, else the general one), depth-first up to the configured depth, each once.
    A failure no fallback can help (`fallback_kind` None) stays within its group."""
    yield group
    kind = fallback_kind(error)
    if kind is None:
        return
    table = run.bundle.table
    max_depth = table.config.fallbacks.max_depth
    seen = {group}

    def walk(source: str, depth: int) -> Iterator[str]:
        if depth >= max_depth:
            return
        for target in table.fallbacks(kind, source):
            if target not in seen:
                seen.add(target)
                yield target
                yield from walk(target, depth + 1)

    yield from walk(group, 0)


async def _open_continuation(
    dispatch: Dispatch,
    failed: Attempt,
    attempt: Attempt,
    transcript: Transcript,
    error: TurnoutError,
    prefill: bool,
) -> Segment | TurnoutError | None:
    """One try at continuing on the attempt's deployment: its segment, or why it could not."""
    run = attempt.run
    request = continuation_request(run.request, transcript.text, prefill=prefill)
    attempt.request = request
    if dispatch.bus.active:
        dispatch.bus.emit(
            StreamFailover(
                run.request.request_id,
                attempt.group,
                failed.deployment.id,
                error.kind,
                len(transcript.text),
                "prefill" if prefill else "instruction",
            )
        )
    try:
        async with dispatch.clock.timeout_at(run.deadline):
            opened = await dispatch.call(attempt, Call.STREAM)
    except TurnoutError as refused:
        return refused
    except TimeoutError:
        return None
    assert isinstance(opened, Segment)
    opened.prefill = prefill
    opened.added_prompt = added_prompt_tokens(run.request, request)
    return opened


def _capabilities(bundle: ConfigBundle, deployment: Deployment) -> Capabilities:
    ask = getattr(bundle.providers[deployment.provider], "capabilities", None)
    found = ask(deployment) if ask is not None else None
    return found if isinstance(found, Capabilities) else Capabilities()
