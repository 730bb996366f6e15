"""Photos and phone videos to RGB uint8 frames ([H, W, 3], upright).

`sample_video` reads a video file (`video.py`), `decode_images` and
`decode_image` read uploaded photo bytes (`photos.py`). Bad input raises a
`tcp_proxy.errors.ServiceError` subclass, never a decoder's own exception.
"""

from serve_app.frames.photos import decode_image, decode_images
from serve_app.frames.video import sample_video

__all__ = ["decode_image", "decode_images", "sample_video"]
