"""The rules an upload is held to on every front (IMAGE/VIDEO over TCP, the browser's API): one place for each."""

from __future__ import annotations

from .backend import User


def may_send_video(user: User, require_vip_for_video: bool) -> bool:
    """Whether `user` may upload a video: VIP accounts, or everyone where the setting allows it."""
    return bool(user.is_vip) or not require_vip_for_video


def too_many_images(count: int, max_images: int) -> bool:
    """Whether `count` photos are more than one reconstruction takes."""
    return count > max_images
