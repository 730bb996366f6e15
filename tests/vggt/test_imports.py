"""The model side needs only torch, numpy and pillow: scripts/gpu_checks.sh runs it on a bare GPU machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ABSENT = ("cv2", "av", "sqlalchemy", "alembic", "ray", "trimesh", "yaml", "tqdm", "pydantic")


def test_runner_and_settings_import_without_the_service_libraries():
    code = (
        "import sys\n"
        f"for name in {ABSENT!r}:\n"
        "    sys.modules[name] = None  # any import of it now fails\n"
        "import serve_app.vggt.runner, serve_app.config, tcp_proxy.errors\n"
        "from serve_app.config import AppSettings\n"
        "assert AppSettings().model.preset == 'vggt-1b'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
