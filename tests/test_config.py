import dataclasses

import pytest

from serve_app.config import AppSettings


def test_defaults_match_the_existing_service():
    settings = AppSettings.from_dict({})
    assert settings.storage.database_url == "sqlite:///./vggt_app.db"
    assert settings.frames.fps == 0.4
    assert settings.export.conf_percentile == 3.0
    assert settings.export.source == "pointmap"
    assert not (settings.export.mask_black_bg or settings.export.mask_white_bg or settings.export.show_cameras)
    assert settings.proxy.port == 4567


def test_nested_values_override_defaults_and_round_trip():
    settings = AppSettings.from_dict({"model": {"preset": "tiny", "device": "cpu"}, "frames": {"fps": 1}})
    assert settings.model.preset == "tiny"
    assert settings.frames.fps == 1.0 and isinstance(settings.frames.fps, float)
    assert AppSettings.from_dict(dataclasses.asdict(settings)) == settings


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"modle": {}}, "unknown settings section"),
        ({"model": {"presett": "tiny"}}, "unknown setting(s) in 'model'"),
        ({"proxy": {"port": "4567"}}, "proxy.port must be an integer"),
        ({"proxy": {"bind_sessions_to_ip": 1}}, "must be true or false"),
        ({"model": {"device": "tpu"}}, "model.device must be one of"),
        ({"export": {"source": "mesh"}}, "export.source must be one of"),
        ({"export": {"conf_percentile": 100.5}}, "export.conf_percentile must be in [0, 100]"),
        ({"frames": {"fps": 0}}, "frames.fps must be positive"),
        ({"frames": "fast"}, "must be a mapping"),
    ],
)
def test_bad_settings_fail_with_a_message_naming_the_key(args, fragment):
    with pytest.raises(ValueError, match=None) as info:
        AppSettings.from_dict(args)
    assert fragment in str(info.value)


def test_settings_are_frozen():
    settings = AppSettings.from_dict({})
    with pytest.raises(Exception):
        settings.proxy.port = 1  # type: ignore[misc]


def test_optional_settings_are_still_checked():
    with pytest.raises(ValueError, match="export.max_points must be a positive integer"):
        AppSettings.from_dict({"export": {"max_points": "many"}})
    with pytest.raises(ValueError, match="export.downsample must be one of"):
        AppSettings.from_dict({"export": {"downsample": "random"}})
    assert AppSettings.from_dict({"export": {"max_points": 1000}}).export.max_points == 1000
