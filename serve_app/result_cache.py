"""Reusing stored results: the same upload, by the same user, with the same settings, is not computed again.

The key (`ResultCache.key`) is a sha256 over everything that shapes the GLB:
the upload's bytes (each photo, or the video file), the frame sampling
settings, the model (preset, checkpoint path, preprocessing, weight
precision) and every export option. The export stage stores it with the
GLB's row (`glb_files.source_digest`); before running the stages, the ingress
looks it up among the user's own GLBs and, when the file is still there,
answers with that GLB and its existing share hash.

Decided: identical uploads of different users do not share a result. Each
user gets a row and a share hash of their own (a hash is a capability to
fetch, and a user's list shows only what they uploaded), so the second user's
upload is computed like any other. A result stored before the key existed
is never reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from serve_app.config import AppSettings
from serve_app.stages import Upload

KEY_VERSION = "1"  # bump when the reconstruction changes in a way the settings do not show
READ_CHUNK = 1024 * 1024


class ResultCache:
    """Computes result keys for one set of settings."""

    def __init__(self, settings: AppSettings) -> None:
        model = settings.model
        shaping = {
            "version": KEY_VERSION,
            "frames": dataclasses.asdict(settings.frames),
            "model": {
                "preset": model.preset,
                "checkpoint": model.checkpoint,
                "preprocess_mode": model.preprocess_mode,
                "weights_bf16": model.weights_bf16,
                "seed": model.seed,
            },
            "export": dataclasses.asdict(settings.export),
        }
        self._prefix = json.dumps(shaping, sort_keys=True).encode("utf-8")

    def key(self, upload: Upload) -> str:
        """64 hex characters; reads a video through once (call it off the event loop)."""
        digest = hashlib.sha256(self._prefix)
        digest.update(upload.source.encode("ascii"))
        if upload.video is not None:
            data = memoryview(upload.video)
            for start in range(0, len(data), READ_CHUNK):  # a mapped file is read page by page
                digest.update(data[start : start + READ_CHUNK])
        else:
            for image in upload.images:
                digest.update(len(image).to_bytes(8, "big"))  # framing: no two uploads hash alike
                digest.update(image)
        return digest.hexdigest()
