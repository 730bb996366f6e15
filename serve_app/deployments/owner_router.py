"""`OwnerRouter`: Serve's request routing for TCPIngress calls that must reach one replica.

A browser upload is received by the ingress replica that admitted it (its
slot, parser and spool file live there), so every later piece of it must go
to that replica. Its upload id starts with the replica's id
(`serve_app.web_jobs.OWNER_SEPARATOR`), and the HTTP ingress passes that
id as the call's `route_to` keyword: this router then offers only that
replica. Any other call, or one whose replica is gone, is routed as Serve
routes by default (its power-of-two-choices router, which this one
extends: it keeps that router's cached queue lengths and locality for the
health and status calls); a replica that does not hold the upload answers
`ERROR_INCOMPLETE_REQUEST`, never a hang.

Serve's default router hands a replica it found to the oldest waiting call
(FIFO), not necessarily the call it was chosen for: that would send one
upload's piece to another upload's replica. This router hands each replica
to the very call it was chosen for. That call is found by its own metadata
object, not by Serve's internal request id: calls made while one request is
handled share that id (the readiness check asks the ingress two things at
once), and matching by it handed both replicas to the first call and left
the second waiting forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import PendingRequest, RunningReplica

ROUTE_KEYWORD = "route_to"


def owner_of(pending: PendingRequest | None) -> str:
    """The replica id a call asks to reach ("" for any)."""
    kwargs: Any = getattr(pending, "kwargs", None) or {}
    wanted = kwargs.get(ROUTE_KEYWORD, "")
    return wanted if isinstance(wanted, str) else ""


def pinned(candidates: list[RunningReplica], owner: str) -> list[RunningReplica]:
    """The candidates that are the replica `owner` (one, or none when it is gone)."""
    return [replica for replica in candidates if replica.replica_id.unique_id == owner]


class OwnerRouter(PowerOfTwoChoicesRequestRouter):
    """Serve's default routing, except that a call naming its replica goes to it while it runs."""

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        owner = owner_of(pending_request)
        chosen = pinned(candidate_replicas, owner) if owner else []
        if chosen:
            return [chosen]
        return await super().choose_replicas(candidate_replicas, pending_request)

    def _fulfill_next_pending_request(self, replica: RunningReplica, request_metadata: Any = None) -> None:
        """Hand `replica` to the waiting call whose routing found it (`request_metadata` is that call's)."""
        pending = chosen_for(self._pending_requests_to_fulfill, request_metadata)
        if pending is None:  # cancelled meanwhile, or already handed a replica
            return
        self._cancel_routing_task_for_pending_request(pending)
        self._record_queue_wait_time(pending)
        pending.future.set_result(replica)
        if self._pending_requests_by_id.get(request_metadata.internal_request_id) is pending:
            self._remove_pending_request_from_indices(pending)  # the index holds one call per shared id


def chosen_for(waiting: Iterable[PendingRequest], request_metadata: Any) -> PendingRequest | None:
    """The waiting call, not yet handed a replica, that `request_metadata` belongs to (by identity)."""
    for pending in waiting:
        if pending.metadata is request_metadata and not pending.future.done():
            return pending
    return None
