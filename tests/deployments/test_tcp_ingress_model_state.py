"""What the TCP ingress knows of the model, without Ray: the header check's answer and its re-asking."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from serve_app.deployments import tcp_ingress
from serve_app.deployments.tcp_ingress import TCPIngress

INGRESS = TCPIngress.func_or_class  # the class under Serve's deployment wrapper


class StatusReplies:
    """VGGTInference's `status` handle: answers in turn, the last one repeated."""

    def __init__(self, *answers) -> None:
        self._answers = list(answers)
        self.asked = 0
        self.remote = self._status

    async def _status(self):
        answer = self._answers[min(self.asked, len(self._answers) - 1)]
        self.asked += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer


def ingress(*answers) -> SimpleNamespace:
    return SimpleNamespace(_model=SimpleNamespace(status=StatusReplies(*answers)), _model_status=None)


NOT_LOADED = {"loaded": False, "error": "checkpoint model.pt not found"}
LOADED = {"loaded": True, "preset": "tiny", "device": "cpu"}


@pytest.mark.parametrize(
    ("status", "may_run"),
    [(None, True), (LOADED, True), (NOT_LOADED, False), ({}, False)],
)
def test_uploads_are_refused_only_once_the_model_is_known_not_loaded(status, may_run):
    assert INGRESS._model_may_run(SimpleNamespace(_model_status=status)) is may_run


def test_a_model_not_loaded_is_asked_again_until_it_is(monkeypatch):
    monkeypatch.setattr(tcp_ingress, "MODEL_RECHECK_S", 0.0)
    state = ingress(NOT_LOADED, NOT_LOADED, LOADED, NOT_LOADED)
    asyncio.run(asyncio.wait_for(INGRESS._log_model_status(state), 10))
    assert state._model.status.asked == 3  # stopped once loaded
    assert state._model_status == LOADED and INGRESS._model_may_run(state)


def test_a_failed_question_leaves_the_state_unknown_so_uploads_go_on(monkeypatch):
    monkeypatch.setattr(tcp_ingress, "MODEL_RECHECK_S", 0.0)
    state = ingress(RuntimeError("no replica"))
    asyncio.run(asyncio.wait_for(INGRESS._log_model_status(state), 10))
    assert state._model_status is None and INGRESS._model_may_run(state)
