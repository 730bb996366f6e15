"""The upload rules both fronts use: who may send a video, how many photos one reconstruction takes."""

from __future__ import annotations

import pytest

from tcp_proxy.backend import User
from tcp_proxy.upload_rules import may_send_video, too_many_images


@pytest.mark.parametrize(
    ("is_vip", "required", "allowed"),
    [(True, True, True), (False, True, False), (True, False, True), (False, False, True)],
)
def test_videos_are_for_vip_accounts_where_the_setting_says_so(is_vip, required, allowed):
    assert may_send_video(User(1, "u", is_vip), required) is allowed


def test_the_photo_limit_holds_at_the_limit_and_refuses_one_over():
    assert not too_many_images(19, 20)
    assert not too_many_images(20, 20)
    assert too_many_images(21, 20)
