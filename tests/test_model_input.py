"""The model input's size: known answers, and the module stays free of imports (decoders use it without torch)."""

import subprocess
import sys
from pathlib import Path

import pytest

from serve_app.model_input import resized_size

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("width", "height", "mode", "expected"),
    [
        (4032, 3024, "crop", (518, 392)),  # a 4:3 phone photo: 3024 * 518 / 4032 / 14 = 27.75 patches -> 28
        (3024, 4032, "crop", (518, 686)),  # portrait in crop mode: the width is still 518 (49 patches)
        (3024, 4032, "pad", (392, 518)),  # portrait in pad mode: the height becomes 518
        (4032, 3024, "pad", (518, 392)),  # landscape pad resizes like crop
        (518, 518, "pad", (518, 518)),  # square: the width rule
        (10_000, 10, "crop", (518, 14)),  # rounds to 0 patches: one patch kept
        (10, 10_000, "pad", (14, 518)),
        # 518 * 518 / 740 / 14 = 25.9 -> 26; a half case: 518 * h / 518 / 14 = k + 0.5 rounds to even
        (740, 518, "crop", (518, 364)),
        (518, 7 * 14 + 7, "crop", (518, 112)),  # 7.5 patches -> 8 (even)
        (518, 9 * 14 + 7, "crop", (518, 140)),  # 9.5 -> 10 (even)
        (518, 8 * 14 + 7, "crop", (518, 112)),  # 8.5 -> 8 (even), where round-half-up would give 9
    ],
)
def test_known_sizes(width, height, mode, expected):
    assert resized_size(width, height, mode, 518, 14) == expected


def test_imports_nothing_heavy():
    code = "import sys; import serve_app.model_input; print(sorted({'torch', 'numpy', 'av', 'PIL'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
