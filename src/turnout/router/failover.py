"""Continuing a broken stream: choosing the deployment, asking it, opening the continuation.

The pure parts (what the caller saw, the continuation request, stitching the chunks on) live in
`turnout.router.continuation`; this module does the routing and I/O through the executor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnout.config.router import Deployment
from turnout.errors import BadRequestError, TurnoutError
from turnout.observe.events import StreamFailover
from turnout.providers.capabilities import Capabilities
from turnout.router.attempt import Attempt, Call, Run
from turnout.router.continuation import added_prompt_tokens, continuation_request
from turnout.router.streaming import Segment, Stream
from turnout.router.table import ModelTable
from turnout.router.transcript import Transcript

if TYPE_CHECKING:
    from turnout.router.execution import ConfigBundle, Executor


async def continue_stream(
    executor: Executor, failed: Attempt, transcript: Transcript, error: TurnoutError
) -> Segment | TurnoutError | None:
    """Open a continuation of a broken stream on another deployment of its group. Else the
    error of the last continuation tried, or None when none could be tried (no deployment,
    or the budget, the deadline or a tool call forbid it)."""
    run = failed.run
    bundle = run.bundle
    table = bundle.table
    group = failed.group
    if transcript.in_tool_call:
        return None
    if transcript.several_choices:
        return None
    exclude = {a.deployment_id for a in run.attempts if a.error is not None}
    retry_without_prefill: Deployment | None = None
    refused: TurnoutError | None = None
    for _ in range(3):
        now, wall = executor.clock.now(), executor.clock.wall()
        if now >= run.deadline or not executor.spend_retry(run, group):
            return refused
        if retry_without_prefill is not None:
            deployment: Deployment | None = retry_without_prefill
            prefill, retry_without_prefill = False, None
        else:
            deployment, _ = await executor.decide(
                bundle, group, run.request, exclude, now, wall, run.deadline - now
            )
            if deployment is None:
                return refused
            exclude.add(deployment.id)
            prefill = _capabilities(bundle, deployment).assistant_prefill
        assert deployment is not None
        segment = await _open_continuation(
            executor, table, group, run, failed, deployment, transcript, error, prefill
        )
        if isinstance(segment, Segment):
            return segment
        if isinstance(segment, TurnoutError):
            refused = segment
            if prefill and isinstance(segment, BadRequestError):
                # The target refused the prefill itself: ask it again, by instruction.
                retry_without_prefill = deployment
    return refused


async def _open_continuation(
    executor: Executor,
    table: ModelTable,
    group: str,
    run: Run,
    failed: Attempt,
    deployment: Deployment,
    transcript: Transcript,
    error: TurnoutError,
    prefill: bool,
) -> Segment | TurnoutError | None:
    """One try at continuing on `deployment`: its segment, or why it could not."""
    now, wall = executor.clock.now(), executor.clock.wall()
    request = continuation_request(run.request, transcript.text, prefill=prefill)
    attempt = await executor.begin(table, group, run, deployment, now, wall)
    if attempt is None:
        return None
    attempt.request = request
    if executor.bus.active:
        executor.bus.emit(
            StreamFailover(
                run.request.request_id,
                group,
                failed.deployment.id,
                error.kind,
                len(transcript.text),
                "prefill" if prefill else "instruction",
            ),
        )
    try:
        async with executor.clock.timeout_at(run.deadline):
            opened = await executor.call_deployment(attempt, Call.STREAM)
    except TurnoutError as refused:
        return refused
    except TimeoutError:
        return None
    assert isinstance(opened, Stream)
    segment = opened._segment
    segment.prefill = prefill
    segment.added_prompt = added_prompt_tokens(run.request, request)
    return segment


def _capabilities(bundle: ConfigBundle, deployment: Deployment) -> Capabilities:
    ask = getattr(bundle.providers[deployment.provider], "capabilities", None)
    found = ask(deployment) if ask is not None else None
    return found if isinstance(found, Capabilities) else Capabilities()
