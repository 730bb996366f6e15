"""tcp_proxy stands alone: it owns the protocol and imports nothing of the application."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import tcp_proxy

PACKAGE = Path(tcp_proxy.__file__).resolve().parent


def test_no_module_mentions_the_application_in_its_imports():
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "serve_app" for name in names), f"{path.name}: {names}"


def test_every_module_imports_with_the_application_absent():
    modules = sorted(f"tcp_proxy.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE)]))
    assert {"tcp_proxy.codec", "tcp_proxy.server", "tcp_proxy.errors", "tcp_proxy.settings"} <= set(modules)
    code = (
        "import importlib, sys\n"
        "sys.modules['serve_app'] = None  # any import of it now fails\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
