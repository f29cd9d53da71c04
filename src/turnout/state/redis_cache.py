"""What a Redis-backed process last read of its deployments: the reason choosing costs nothing.

Every answer of the clean path's scripts carries the fresh records of the request's group (or
of its one deployment), so the router's next decision for that group reads them here instead
of asking Redis. A group's records serve reads for `max_age` seconds at most; a record read or
written alone (a transaction's result) is patched into every cached group it belongs to, so a
group never shows an older record than one this process has seen. The latest record of each
deployment is also kept on its own: it seeds local state when Redis goes down, and tells the
re-sync which deployments this process knows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from turnout.health.snapshot import DeploymentSnapshot


class _Group:
    __slots__ = ("at", "views")

    def __init__(self, views: tuple[DeploymentSnapshot, ...], at: float) -> None:
        self.views = views
        self.at = at


class GroupCache:
    """Groups' records as last read (by the ids of the group, in order), and each record's
    latest view (`views`)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, ...], _Group] = {}
        #: Where each deployment sits in the cached groups, to patch them when it changes.
        self._member_of: dict[str, list[tuple[_Group, int]]] = {}
        #: The latest view of every deployment read or written.
        self.views: dict[str, DeploymentSnapshot] = {}

    def group(self, ids: tuple[str, ...]) -> tuple[DeploymentSnapshot, ...] | None:
        """The group's records as last read, however old (None: never read)."""
        group = self._groups.get(ids)
        return None if group is None else group.views

    def fresh(self, ids: tuple[str, ...], max_age: float) -> tuple[DeploymentSnapshot, ...] | None:
        """The group's records if read within `max_age` seconds."""
        group = self._groups.get(ids)
        if group is not None and time.monotonic() - group.at < max_age:
            return group.views
        return None

    def store(self, ids: tuple[str, ...], views: Sequence[DeploymentSnapshot]) -> None:
        """The group's records, just read (each also becomes its deployment's latest view)."""
        frozen = tuple(views)
        for view in frozen:
            self.views[view.deployment_id] = view
        group = self._groups.get(ids)
        if group is None:
            group = self._groups[ids] = _Group(frozen, time.monotonic())
            for position, deployment_id in enumerate(ids):
                self._member_of.setdefault(deployment_id, []).append((group, position))
        else:
            group.views = frozen
            group.at = time.monotonic()

    def remember(self, view: DeploymentSnapshot) -> None:
        """A record read or written alone: patch it into the cached groups it belongs to."""
        deployment_id = view.deployment_id
        self.views[deployment_id] = view
        for group, position in self._member_of.get(deployment_id, ()):
            views = list(group.views)
            views[position] = view
            group.views = tuple(views)

    def forget_groups(self) -> None:
        """Drop every cached group (the latest views stay): the next reads go to Redis."""
        self._groups.clear()
        self._member_of.clear()

    def forget(self, deployment_id: str) -> None:
        self.views.pop(deployment_id, None)
