"""docs/PROTOCOL.md names every code the server can send, and no code it cannot."""

from __future__ import annotations

import re
from pathlib import Path

from tcp_proxy import codec, errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def _codes_in_code() -> set[str]:
    classes = [errors.ServiceError]
    found = set()
    while classes:
        cls = classes.pop()
        if cls.__module__.startswith("tcp_proxy."):  # serve_app's own codes are the HTTP API's (docs/HTTP_API.md)
            found.add(cls.code)
        classes.extend(cls.__subclasses__())
    constants = {value for name, value in vars(codec).items() if name.startswith(("ERROR_", "UNKNOWN_"))}
    return found | constants


def test_every_error_code_is_documented():
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"\b(?:ERROR_[A-Z_]+|UNKNOWN_COMMAND)\b", text))
    codes = _codes_in_code()
    assert len(codes) >= 18
    assert not codes - documented, f"codes the document does not name: {sorted(codes - documented)}"
    assert not documented - codes, f"codes the document names but the code never sends: {sorted(documented - codes)}"


def test_every_command_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for number, name in codec.COMMAND_NAMES.items():
        assert re.search(rf"\b{number}\b.*\b{name}\b", text), (number, name)
