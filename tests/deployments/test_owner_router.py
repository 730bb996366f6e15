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


def test_a_found_replica_goes_to_the_call_it_was_chosen_for_not_the_oldest_waiting():
    from collections import deque

    from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter

    assert issubclass(OwnerRouter, PowerOfTwoChoicesRequestRouter)  # Serve's default routing otherwise
    loop = asyncio.new_event_loop()
    older = SimpleNamespace(future=loop.create_future(), id="older")  # another upload's piece, waiting longer
    chosen_for = SimpleNamespace(future=loop.create_future(), id="mine")
    router = SimpleNamespace(
        _pending_requests_to_fulfill=deque([older, chosen_for]),
        _get_pending_request_matching_internal_request_id=lambda metadata: chosen_for if metadata == "mine" else None,
        _cancel_routing_task_for_pending_request=lambda pending: None,
        _record_queue_wait_time=lambda pending: None,
        _remove_pending_request_from_indices=lambda pending: None,
    )
    OwnerRouter._fulfill_next_pending_request(router, REPLICAS[1], "mine")
    assert chosen_for.future.result() is REPLICAS[1] and not older.future.done()
    loop.close()
