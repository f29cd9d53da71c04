"""Choosers for driving a store's `begin` directly, without a router."""

from __future__ import annotations

from collections.abc import Sequence

from turnout.health.snapshot import DeploymentSnapshot


class Only:
    """Always picks `deployment_id` (and takes no turns); with `expect`, checks that the store
    hands it the records of exactly these ids, in order."""

    turn: Sequence[str] = ()

    def __init__(self, deployment_id: str, expect: Sequence[str] | None = None) -> None:
        self.deployment_id = deployment_id
        self.expect = expect

    def __call__(self, states: Sequence[DeploymentSnapshot]) -> tuple[str | None, Sequence[str]]:
        if self.expect is not None:
            assert [s.deployment_id for s in states] == list(self.expect)
        return self.deployment_id, ()

    def turn_falls_on(self, deployment_id: str) -> None:
        raise AssertionError("a chooser that takes no turns was given one")
