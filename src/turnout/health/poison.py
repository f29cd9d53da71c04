"""Poison requests: a request that breaks every upstream must not take them out for everyone.

Some requests make every upstream answer 500 (a prompt that crashes the model server, an
attachment its parser chokes on). Retried and fallen back like any failure, a few of them would
count against every deployment they reach until the whole group cools down. So a server error
on a deployment that is answering other requests is *held*: it does not count yet, and waits
for its request's verdict.

* The request fails like that on ``min_deployments`` deployments (the group's own or its
  fallbacks'), each held and still clean: the request is the cause. It fails at once with
  `PoisonRequestError` and its held failures are dropped: no deployment's counters, cooldown,
  ejection or reliability moves.
* The request ends any other way (served elsewhere, out of deployments, deadline, caller gone):
  its held failures count, as they would have without holding.
* The deployment fails another request in a way that counts (a timeout, a 503, a probe, any
  error while it is not answering others) before the verdict: every failure held in its streak
  since its last success counts first, and the held ones are no longer clean.
* A failure is held only while counting it, with those already held since the last success,
  would not take the deployment out. The failure that would counts every held one with it.
* A dropped failure stays in its deployment's streak until it is *explained*: by the
  deployment's next success, or by another success of any deployment its verdict was given on
  (the verdict records each one's count of successes; `explain` compares). Those serving
  again is what shows the request, not them, was the cause.
* A failure is never held on a deployment whose streak holds a dropped failure still
  unexplained: nothing was served since on any deployment of that verdict, so an outage
  explains it as well as a poison request did. It counts at once, with the whole streak, and
  its request goes on as without holding: retries and fallbacks as usual, its own error, no
  verdict (`FAILING`). In an outage of everything only the first request can be misjudged;
  from the second on, behaviour and counting are the same as without holding, so cooldowns
  and ejections trip at the same failure (the first request's saved retries and fallback
  attempts are the only failures missing). The price: poison requests with nothing served
  between them on the deployments they failed on look like that outage, and from the second
  on they count.

Evidence that a deployment answers other requests is the health state the router keeps: a
success within ``success_window`` seconds, a closed circuit, no cooldown. A deployment without a
recent success but with no failure counted since its last one (a fallback that only sees what
its primary could not serve) is no evidence against the request: its failure is held too, but a
verdict needs at least one deployment with a recent success among those that failed the request,
so that deployments nobody has used lately never judge a request alone. Only server errors
are held (5xx other than 502, 503, 504 and 529, which speak of the upstream's capacity or its
edge, and failures of a provider's own code). Connection errors and timeouts are never held:
they happen below the request's content, and a timeout already takes the deployment out at once
so that a hung upstream is not given another request to hang on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from turnout.errors import FailureKind, ProviderError, TurnoutError
from turnout.health.events import HealthEvent
from turnout.health.record import BreakerPhase, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, count_failure, would_take_out

#: Upstream statuses that speak of the upstream's capacity or its edge, never of one request.
_CAPACITY_STATUSES = frozenset({502, 503, 504, 529})

#: `hold`'s answer when the failure counts now because the deployment's streak holds a dropped
#: failure still unexplained: its request must go on as if nothing were ever held.
FAILING = -1

#: The deployments a verdict was given on, each with its count of successes (`served`) then.
Marks = tuple[tuple[str, int], ...]


def suspect(error: TurnoutError) -> bool:
    """Whether a failure is of the kind a request's own content can cause (a server error)."""
    if error.kind is not FailureKind.SERVER_ERROR:
        return False
    status = error.upstream_status if isinstance(error, ProviderError) else None
    return status not in _CAPACITY_STATUSES


@dataclass(frozen=True, slots=True)
class Hold:
    """A failure of one request, held on one deployment until the request's verdict."""

    deployment_id: str
    token: int
    policy: HealthPolicy


def hold(
    state: DeploymentState, outcome: Outcome, policy: HealthPolicy, now: float, wall: float
) -> int:
    """Hold a server error on a deployment answering other requests; its token, or 0 (or
    `FAILING`) when it must be counted now (by `turnout.health.rules.settle`).

    The state's explained failures must have been pruned first (`explain`).
    """
    window = policy.hold_window
    if window <= 0 or outcome.probe:
        return 0
    if state.dropped is not None:
        return FAILING
    if state.phase is not BreakerPhase.CLOSED:  # ejected or probing
        return 0
    state.roll(wall)
    if not answering(state, window, now) and (state.consecutive_failures or state.streak):
        return 0
    streak = state.held_streak
    if would_take_out(state, policy, (len(streak) if streak else 0) + 1):
        return 0
    if state.in_flight > 0:
        state.in_flight -= 1
    state.tpm_used += outcome.tokens
    state.hold_seq += 1
    token = state.hold_seq
    if state.held is None:
        state.held = {}
    state.held[token] = False
    if streak is None:
        state.held_streak = [token]
    else:
        streak.append(token)
    return token


def answering(state: DeploymentState, window: float, now: float) -> bool:
    """Whether the deployment served a request within the last `window` seconds."""
    return state.last_success > 0 and now - state.last_success <= window


def still_held(state: DeploymentState, token: int) -> bool:
    """Whether the failure held under `token` is clean: no later failure made it count."""
    held = state.held
    return held is not None and held.get(token) is False


def explain(state: DeploymentState, served: Callable[[str], int | None]) -> None:
    """Take out of the streak every dropped failure that a deployment of its verdict has
    explained by serving since (`served`: a deployment's count of successes, None when it is
    unknown). A counter that changed either way counts: a deployment removed and added again
    restarts at 0."""
    dropped = state.dropped
    if dropped is None:
        return
    streak = state.held_streak
    for token, marks in list(dropped.items()):
        for deployment_id, then in marks:
            count = served(deployment_id)
            if count is not None and count != then:
                del dropped[token]
                if streak is not None and token in streak:
                    streak.remove(token)
                break
    if not dropped:
        state.dropped = None
    if not streak:
        state.held_streak = None


def verdict_marks(states: Sequence[DeploymentState], tokens: Sequence[int]) -> Marks:
    """The deployments a verdict is given on: those whose hold (`tokens`, in order) is still
    clean, once each, with their count of successes now."""
    marks: list[tuple[str, int]] = []
    seen: set[str] = set()
    for state, token in zip(states, tokens, strict=True):
        if state.deployment_id not in seen and still_held(state, token):
            seen.add(state.deployment_id)
            marks.append((state.deployment_id, state.served))
    return tuple(marks)


def judge(
    states: Sequence[DeploymentState],
    tokens: Sequence[int],
    needed: int,
    window: float,
    now: float,
) -> tuple[str, ...]:
    """A request's verdict from its held failures (`tokens`, each held on the state at the same
    position): the deployments it is judged the cause on, or () when it is not.

    It is the cause once at least `needed` deployments hold one of its failures still clean
    (no other request's failure made it count meanwhile) and one of those answered another
    request within `window` seconds: nobody having seen them serve lately is no evidence
    either way. Judged, every hold is dropped (`drop`), remembered in its deployment's streak
    until a deployment of the verdict serves again.
    """
    marks = verdict_marks(states, tokens)
    if len(marks) < needed:
        return ()
    clean = {deployment_id for deployment_id, _ in marks}
    if not any(answering(s, window, now) for s in states if s.deployment_id in clean):
        return ()
    for state, token in zip(states, tokens, strict=True):
        drop(state, token, marks)
    return tuple(deployment_id for deployment_id, _ in marks)


def drop(state: DeploymentState, token: int, marks: Marks) -> None:
    """The held failure's request was judged the cause: drop it. It stays in the streak,
    unexplained until a deployment of `marks` serves again (`explain`)."""
    held = state.held
    if held is None or token not in held:
        return
    counted = held.pop(token)
    if not held:
        state.held = None
    streak = state.held_streak
    if counted or streak is None or token not in streak:
        return  # counted with its streak already, or a success since ended the streak
    if state.dropped is None:
        state.dropped = {}
    state.dropped[token] = marks


def resolve(
    state: DeploymentState,
    token: int,
    blame: bool,
    policy: HealthPolicy,
    now: float,
    wall: float,
) -> list[HealthEvent]:
    """The held failure's verdict: count it (`blame`), or drop it as the request's fault,
    with this deployment alone to explain it (`drop` takes every deployment of a verdict).
    """
    if not blame:
        drop(state, token, ((state.deployment_id, state.served),))
        return []
    held = state.held
    if held is None or token not in held:
        return []
    counted = held.pop(token)
    if not held:
        state.held = None
    streak = state.held_streak
    in_streak = streak is not None and token in streak
    if streak is not None and in_streak:
        streak.remove(token)
        if not streak:
            state.held_streak = None
    if counted:
        return []
    state.roll(wall)
    events: list[HealthEvent] = []
    count_failure(state, FailureKind.SERVER_ERROR, policy, now, events, consecutive=in_streak)
    return events
