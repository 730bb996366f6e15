"""`OwnerRouter`: a call naming its replica is offered only that replica while it runs; any other call, any."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from serve_app.deployments.owner_router import ROUTE_KEYWORD, OwnerRouter, owner_of, pinned
from serve_app.deployments.tcp_ingress import OWNER_ROUTER, TCPIngress


def replica(unique_id: str):
    return SimpleNamespace(replica_id=SimpleNamespace(unique_id=unique_id))


def call(**kwargs):
    return SimpleNamespace(args=["upload_write", "x.y", b"piece"], kwargs=kwargs)


REPLICAS = [replica("aaaa"), replica("bbbb"), replica("cccc")]


DEFAULT = [["Serve's own choice"]]


def choose(pending) -> list[list]:
    """What OwnerRouter chooses for `pending`, with Serve's default routing answering DEFAULT."""
    from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter

    async def default(self, candidates, pending_request=None):
        return DEFAULT

    router = OwnerRouter.__new__(OwnerRouter)  # no state of the router's is used
    original = PowerOfTwoChoicesRequestRouter.choose_replicas
    PowerOfTwoChoicesRequestRouter.choose_replicas = default
    try:
        return asyncio.run(router.choose_replicas(REPLICAS, pending))
    finally:
        PowerOfTwoChoicesRequestRouter.choose_replicas = original


def test_a_call_naming_a_running_replica_goes_to_it_alone():
    assert choose(call(**{ROUTE_KEYWORD: "bbbb"})) == [[REPLICAS[1]]]
    assert choose(call(**{ROUTE_KEYWORD: "cccc"})) == [[REPLICAS[2]]]


def test_any_other_call_is_routed_as_serve_routes_by_default():
    assert choose(call()) == DEFAULT
    assert choose(None) == DEFAULT
    assert choose(call(**{ROUTE_KEYWORD: ""})) == DEFAULT
    assert choose(call(**{ROUTE_KEYWORD: "gone"})) == DEFAULT  # its replica died: another answers the error
    assert choose(call(**{ROUTE_KEYWORD: 7})) == DEFAULT  # not an id


def test_helpers():
    assert owner_of(call(route_to="aaaa")) == "aaaa" and owner_of(SimpleNamespace()) == ""
    assert pinned(REPLICAS, "aaa") == [] and pinned(REPLICAS, "aaaa") == [REPLICAS[0]]


def test_the_tcp_ingress_routes_with_it():
    config = TCPIngress._deployment_config.request_router_config
    assert config.request_router_class == OWNER_ROUTER == "serve_app.deployments.owner_router.OwnerRouter"
    assert config.get_request_router_class() is OwnerRouter


class ServeReplica:
    """What Serve's routing reads of a running replica: its id, place, capacity and queue length (empty,
    told after `answer_s`)."""

    def __init__(self, unique_id: str, answer_s: float = 0.0) -> None:
        from ray.serve._private.common import DeploymentID, ReplicaID

        self.replica_id = ReplicaID(unique_id, DeploymentID("TCPIngress", "app"))
        self.node_id, self.availability_zone, self.actor_id = "node", None, None
        self.multiplexed_model_ids, self.routing_stats, self.max_ongoing_requests = set(), {}, 64
        self.answer_s = answer_s

    async def get_queue_len(self, *, deadline_s: float) -> int:
        await asyncio.sleep(self.answer_s)
        return 0


def route_together(calls: list[tuple[str, dict, str]]) -> list[str]:
    """The replica a real `OwnerRouter` hands each of `calls` (method, kwargs, internal request id), all
    waiting at once, among replicas aaaa and bbbb (the slower to tell its queue length); fails if any
    is left waiting for 5 s."""
    from ray.serve._private.common import DeploymentHandleSource, DeploymentID, RequestMetadata
    from ray.serve._private.request_router.common import PendingRequest

    async def main() -> list[str]:
        router = OwnerRouter(
            deployment_id=DeploymentID("TCPIngress", "app"), handle_source=DeploymentHandleSource.UNKNOWN
        )
        router.update_replicas([ServeReplica("aaaa"), ServeReplica("bbbb", answer_s=0.02)])
        pending = [
            PendingRequest(args=[method], kwargs=kwargs, metadata=RequestMetadata("r", internal_id, method))
            for method, kwargs, internal_id in calls
        ]
        chosen = await asyncio.wait_for(asyncio.gather(*map(router._choose_replica_for_request, pending)), 5)
        return [replica.replica_id.unique_id for replica in chosen]

    return asyncio.run(main())


def test_calls_made_while_one_request_is_handled_are_all_routed():
    """Such calls share Serve's internal request id (/readyz asks the ingress two things at once)."""
    chosen = route_together([("listening", {}, "same"), ("model_status", {}, "same"), ("status", {}, "same")])
    assert len(chosen) == 3 and set(chosen) <= {"aaaa", "bbbb"}


def test_pieces_waiting_together_each_reach_their_own_replica_not_the_oldest_waiting():
    owners = ["bbbb", "aaaa", "bbbb", "aaaa", "aaaa", "bbbb"]
    for shared in (False, True):  # uploads of different requests, and calls of one request
        calls = [("upload_write", {ROUTE_KEYWORD: owner}, "same" if shared else f"id{n}") for n, owner in enumerate(owners)]
        assert route_together(calls) == owners
