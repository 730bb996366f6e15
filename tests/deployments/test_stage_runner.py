"""HandleStageRunner over stand-in handles: the chaining, a replica's ServiceError as itself, lost replicas.

Ray's exception classes are real; no cluster is started.
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ray.serve")

from ray.exceptions import ActorDiedError, OutOfMemoryError, RayTaskError  # noqa: E402
from ray.serve._private.common import DeploymentID  # noqa: E402
from ray.serve.exceptions import DeploymentUnavailableError  # noqa: E402

from serve_app.deployments.stage_runner import HandleStageRunner, replica_lost  # noqa: E402
from tcp_proxy.errors import BadImageError  # noqa: E402


class FakeResponse:
    """A DeploymentResponse: awaiting it awaits its argument first, then runs the replica's method."""

    def __init__(self, method, argument) -> None:
        self.method, self.argument = method, argument

    def __await__(self):
        return self._result().__await__()

    async def _result(self):
        argument = await self.argument if isinstance(self.argument, FakeResponse) else self.argument
        return self.method(argument)


class FakeHandle:
    def __init__(self, method) -> None:
        self.run = self
        self.method = method
        self.arguments: list = []

    def remote(self, argument) -> FakeResponse:
        self.arguments.append(argument)
        return FakeResponse(self.method, argument)


def ray_wrapped(error: Exception) -> Exception:
    """`error` as a caller of the replica that raised it gets it."""
    try:
        raise error
    except Exception as exc:
        return RayTaskError("run", "traceback text", exc).as_instanceof_cause()


def test_each_handle_gets_the_previous_response_unawaited():
    handles = [FakeHandle(lambda x, n=n: f"{x}>{n}") for n in ("decode", "inference", "export")]
    result = asyncio.run(HandleStageRunner(handles).run("upload"))
    assert result == "upload>decode>inference>export"
    assert handles[0].arguments == ["upload"]
    assert all(isinstance(h.arguments[0], FakeResponse) for h in handles[1:])  # object refs, not values


def test_a_replicas_service_error_is_raised_as_itself():
    def decode(_upload):
        raise ray_wrapped(BadImageError("photo 2 cannot be decoded"))

    runner = HandleStageRunner([FakeHandle(decode), FakeHandle(lambda x: x)])
    with pytest.raises(BadImageError) as caught:
        asyncio.run(runner.run("upload"))
    assert type(caught.value) is BadImageError and caught.value.message == "photo 2 cannot be decoded"
    assert not runner.is_replica_lost(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        ActorDiedError(),
        OutOfMemoryError("killed by the memory monitor"),
        DeploymentUnavailableError(DeploymentID(name="VGGTInference", app_name="vggt")),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_lost_replica_is_recognised_also_when_wrapped(error):
    assert replica_lost(error)
    assert replica_lost(ray_wrapped(error))
    try:
        raise RuntimeError("while awaiting") from error
    except RuntimeError as chained:
        assert replica_lost(chained)


def test_other_errors_are_not_a_lost_replica():
    assert not HandleStageRunner([]).is_replica_lost(ValueError("a bug"))
    assert not replica_lost(ray_wrapped(ValueError("a bug in a replica")))
