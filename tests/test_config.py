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


def test_frame_bounds_default_to_the_decoders_own():
    from serve_app.frames.bounds import DECODE_MAX_PIXELS
    from serve_app.frames.photos import DEFAULT_MAX_PIXELS, DEFAULT_MAX_REQUEST_PIXELS

    frames = AppSettings.from_dict({}).frames
    assert frames.decode_max_pixels == DECODE_MAX_PIXELS == 2048 * 1536
    assert frames.max_image_pixels == DEFAULT_MAX_PIXELS
    assert frames.max_request_pixels == DEFAULT_MAX_REQUEST_PIXELS >= 20 * 8064 * 6048  # 20 photos of 48 MP


def test_nested_values_override_defaults_and_round_trip():
    settings = AppSettings.from_dict({"model": {"preset": "tiny", "device": "cpu"}, "frames": {"fps": 1}})
    assert settings.model.preset == "tiny"
    assert settings.frames.fps == 1.0 and isinstance(settings.frames.fps, float)
    assert AppSettings.from_dict(dataclasses.asdict(settings)) == settings


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"modle": {}}, "unknown setting modle"),
        ({"model": {"presett": "tiny"}}, "unknown setting model.presett"),
        ({"proxy": {"port": "4567"}}, "setting proxy.port: Input should be a valid integer (got '4567')"),
        ({"proxy": {"bind_sessions_to_ip": 1}}, "setting proxy.bind_sessions_to_ip: Input should be a valid boolean"),
        ({"model": {"device": "tpu"}}, "setting model.device: Input should be 'auto', 'cpu' or 'cuda'"),
        ({"export": {"source": "mesh"}}, "setting export.source: Input should be 'pointmap' or 'depth'"),
        ({"export": {"conf_percentile": 100.5}}, "export.conf_percentile must be in [0, 100]"),
        ({"frames": {"fps": 0}}, "frames.fps must be positive"),
        ({"frames": {"max_request_pixels": 0}}, "frames.max_request_pixels must be positive"),
        ({"frames": {"decode_max_pixels": -1}}, "frames.decode_max_pixels must be positive"),
        ({"frames": "fast"}, "setting frames: Input should be a valid dictionary"),
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
    with pytest.raises(ValueError, match="setting export.max_points: Input should be a valid integer"):
        AppSettings.from_dict({"export": {"max_points": "many"}})
    with pytest.raises(ValueError, match="setting export.downsample: Input should be"):
        AppSettings.from_dict({"export": {"downsample": "random"}})
    assert AppSettings.from_dict({"export": {"max_points": 1000}}).export.max_points == 1000


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"proxy": {"port": 99999}}, "proxy.port must be a TCP port"),
        ({"proxy": {"port": -1}}, "proxy.port must be a TCP port"),
        ({"proxy": {"read_timeout_s": 0}}, "proxy.read_timeout_s must be positive"),
        ({"export": {"skyseg_model": 5}}, "setting export.skyseg_model: Input should be a valid string"),
        ({"export": {"max_points": "1000"}}, "setting export.max_points: Input should be a valid integer"),
        ({"export": {"frame": 1.5}}, "setting export.frame: Input should be a valid integer"),
    ],
)
def test_values_out_of_range_or_of_the_wrong_type_are_refused(args, fragment):
    with pytest.raises(ValueError) as info:
        AppSettings.from_dict(args)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_serve_validates_the_args_with_the_typed_builder():
    """What `serve run`/`serve deploy` do with the YAML's args, before any replica exists."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from serve_app.app import build_app

    with pytest.raises(ValueError, match=r"^setting proxy.port: Input should be a valid integer \(got '4567'\)$"):
        call_user_app_builder_with_args_if_necessary(build_app, {"proxy": {"port": "4567"}})
    with pytest.raises(ValueError, match="^unknown setting model.nonsense$"):
        call_user_app_builder_with_args_if_necessary(build_app, {"model": {"nonsense": 1}})
    with pytest.raises(ValueError, match="setting proxy.port must be a TCP port"):
        call_user_app_builder_with_args_if_necessary(build_app, {"proxy": {"port": 99999}})
    with pytest.raises(ValueError, match="model.preset must be one of"):
        call_user_app_builder_with_args_if_necessary(build_app, {"model": {"preset": "huge"}})
    app = call_user_app_builder_with_args_if_necessary(build_app, {"model.preset": "tiny", "proxy.port": "4568"})
    ingress_settings = app._bound_deployment.init_args[0]
    assert (ingress_settings.model.preset, ingress_settings.proxy.port) == ("tiny", 4568)
