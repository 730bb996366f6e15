import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from serve_app.config import AppSettings
from tcp_proxy.field_checks import SettingError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_match_the_existing_service():
    settings = AppSettings.from_dict({})
    assert settings.storage.database_url == "sqlite:///./vggt_app.db"
    assert settings.frames.fps == 0.4
    assert settings.export.conf_percentile == 3.0
    assert settings.export.source == "pointmap"
    assert not (settings.export.mask_black_bg or settings.export.mask_white_bg or settings.export.show_cameras)
    assert settings.proxy.port == 4567


def test_frame_bounds_default_to_the_decoders_own():
    from serve_app.frames.bounds import DECODE_MAX_PIXELS, DECODE_OVERSAMPLE
    from serve_app.frames.photos import DEFAULT_MAX_PIXELS, DEFAULT_MAX_REQUEST_PIXELS

    frames = AppSettings.from_dict({}).frames
    assert frames.decode_max_pixels == DECODE_MAX_PIXELS == 2048 * 1536
    assert frames.decode_oversample == DECODE_OVERSAMPLE == 2.0
    assert frames.decode_workers == 0  # one a CPU
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
        ({"proxy": {"port": "4567"}}, "setting proxy.port must be an integer in [0, 65535], got '4567'"),
        ({"proxy": {"bind_sessions_to_ip": 1}}, "setting proxy.bind_sessions_to_ip must be true or false, got 1"),
        ({"model": {"device": "tpu"}}, "setting model.device must be one of ['auto', 'cpu', 'cuda'], got 'tpu'"),
        ({"export": {"source": "mesh"}}, "setting export.source must be one of ['pointmap', 'depth'], got 'mesh'"),
        ({"frames": {"decode_oversample": 0.99}}, "setting frames.decode_oversample must be a number >= 1.0, got 0.99"),
        ({"frames": {"decode_workers": -1}}, "setting frames.decode_workers must be an integer >= 0, got -1"),
        ({"export": {"conf_percentile": 101}}, "setting export.conf_percentile must be a number in [0, 100], got 101"),
        ({"frames": {"fps": 0}}, "setting frames.fps must be a number > 0, got 0"),
        ({"frames": {"max_request_pixels": 0}}, "setting frames.max_request_pixels must be an integer > 0, got 0"),
        ({"frames": {"decode_max_pixels": -1}}, "setting frames.decode_max_pixels must be an integer > 0, got -1"),
        ({"frames": {"max_side": -1}}, "setting frames.max_side must be an integer >= 0, got -1"),
        ({"model": {"torch_threads": -2}}, "setting model.torch_threads must be an integer >= -1, got -2"),
        ({"frames": "fast"}, "setting frames must be a mapping of its settings, got 'fast'"),
    ],
)
def test_bad_settings_fail_with_a_message_naming_the_key(args, fragment):
    with pytest.raises(SettingError) as info:
        AppSettings.from_dict(args)
    assert str(info.value) == fragment


def test_settings_are_frozen():
    settings = AppSettings.from_dict({})
    with pytest.raises(Exception):
        settings.proxy.port = 1  # type: ignore[misc]


def test_optional_settings_are_still_checked():
    with pytest.raises(ValueError, match=r"^setting export.max_points must be an integer > 0 or null, got 'many'$"):
        AppSettings.from_dict({"export": {"max_points": "many"}})
    with pytest.raises(ValueError, match="setting export.downsample must be one of"):
        AppSettings.from_dict({"export": {"downsample": "random"}})
    assert AppSettings.from_dict({"export": {"max_points": 1000}}).export.max_points == 1000


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"proxy": {"port": 99999}}, "setting proxy.port must be an integer in [0, 65535], got 99999"),
        ({"proxy": {"port": -1}}, "setting proxy.port must be an integer in [0, 65535], got -1"),
        ({"proxy": {"read_timeout_s": 0}}, "setting proxy.read_timeout_s must be a number > 0, got 0"),
        ({"export": {"skyseg_model": 5}}, "setting export.skyseg_model must be a string or null, got 5"),
        ({"export": {"max_points": "1000"}}, "setting export.max_points must be an integer > 0 or null, got '1000'"),
        ({"export": {"frame": 1.5}}, "setting export.frame must be an integer or null, got 1.5"),
    ],
)
def test_values_out_of_range_or_of_the_wrong_type_are_refused(args, fragment):
    with pytest.raises(ValueError) as info:
        AppSettings.from_dict(args)
    assert str(info.value) == fragment and "\n" not in str(info.value)


def test_serve_validates_the_args_with_the_typed_builder():
    """What `serve run`/`serve deploy` do with the YAML's args, before any replica exists."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from serve_app.app import build_app

    with pytest.raises(SettingError, match=r"^setting proxy.port must be an integer in \[0, 65535\], got '4567'$"):
        call_user_app_builder_with_args_if_necessary(build_app, {"proxy": {"port": "4567"}})
    with pytest.raises(ValueError, match="^unknown setting model.nonsense$"):
        call_user_app_builder_with_args_if_necessary(build_app, {"model": {"nonsense": 1}})
    with pytest.raises(ValueError, match=r"^setting proxy.port must be an integer in \[0, 65535\], got 99999$"):
        call_user_app_builder_with_args_if_necessary(build_app, {"proxy": {"port": 99999}})
    with pytest.raises(ValueError, match="proxy.tls_cert_file and proxy.tls_key_file go together"):
        call_user_app_builder_with_args_if_necessary(build_app, {"proxy": {"tls_cert_file": "cert.pem"}})
    with pytest.raises(ValueError, match="model.preset must be one of"):
        call_user_app_builder_with_args_if_necessary(build_app, {"model": {"preset": "huge"}})
    app = call_user_app_builder_with_args_if_necessary(build_app, {"model.preset": "tiny", "proxy.port": "4568"})
    ingress_settings = app._bound_deployment.init_args[0]
    assert (ingress_settings.model.preset, ingress_settings.proxy.port) == ("tiny", 4568)


def test_errors_name_the_setting_and_its_field():
    with pytest.raises(SettingError) as info:
        AppSettings.from_dict({"export.conf_percentile": "101"})
    assert (info.value.setting, info.value.field) == ("export.conf_percentile", "conf_percentile")
    with pytest.raises(SettingError) as unknown:
        AppSettings.from_dict({"frames": {"fsp": 1}})
    assert (unknown.value.setting, str(unknown.value)) == ("frames.fsp", "unknown setting frames.fsp")


def test_from_file_reads_a_serve_config_or_a_plain_mapping(tmp_path):
    serve_config = tmp_path / "serve.yaml"
    serve_config.write_text("applications:\n  - name: vggt\n    args:\n      proxy: {port: 5000}\n")
    assert AppSettings.from_file(serve_config).proxy.port == 5000
    assert AppSettings.from_file(serve_config, "vggt").proxy.port == 5000
    plain = tmp_path / "settings.yaml"
    plain.write_text("model.preset: tiny\nframes: {fps: 2}\n")
    settings = AppSettings.from_file(plain)
    assert (settings.model.preset, settings.frames.fps) == ("tiny", 2.0)
    plain.write_text("proxy: {port: 70000}\n")
    with pytest.raises(SettingError, match="proxy.port"):
        AppSettings.from_file(plain)


def test_the_settings_import_neither_the_pydantic_model_nor_pydantic():
    """Imports point one way: serve_app.app_args builds on serve_app.config, never the reverse."""
    code = (
        "import sys\n"
        "import serve_app.config\n"
        "from serve_app.config import AppSettings\n"
        "AppSettings.from_dict({'model.preset': 'tiny'})\n"
        "print(sorted(name for name in ('serve_app.app_args', 'pydantic') if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
