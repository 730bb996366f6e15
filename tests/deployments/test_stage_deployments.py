"""The stage deployment classes without Ray: one per declared stage, read from their own `stage_class`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from serve_app.deployments import STAGE_DEPLOYMENT_CLASSES, StageDeployment
from serve_app.deployments.stage_deployment import classes_by_stage
from serve_app.stages import STAGES, DecodeStage, ExportStage, InferenceStage, Stage


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError


def test_the_package_imports_without_ray():
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from serve_app.deployments import STAGE_DEPLOYMENT_CLASSES\n"
        "from serve_app.stages import STAGES\n"
        "assert list(STAGE_DEPLOYMENT_CLASSES) == list(STAGES)\n"
        "assert not [m for m in sys.modules if m.startswith('ray.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.__name__)
def test_every_stage_has_exactly_one_deployment_class(stage):
    wrapping = [cls for cls in StageDeployment.__subclasses__() if cls.stage_class is stage]
    assert wrapping == [STAGE_DEPLOYMENT_CLASSES[stage]]


def test_the_classes_follow_the_order_of_stages_and_state_their_cpu_share():
    assert list(STAGE_DEPLOYMENT_CLASSES) == list(STAGES)
    assert [cls.__name__ for cls in STAGE_DEPLOYMENT_CLASSES.values()] == [
        "FrameExtractor",
        "VGGTInference",
        "GlbExporter",
    ]
    for cls in STAGE_DEPLOYMENT_CLASSES.values():
        assert cls.serve_options["ray_actor_options"]["num_cpus"] > 0, cls.__name__


def wrapper(name: str, stage: type[Stage]) -> type:
    return type(name, (), {"stage_class": stage})


def test_a_stage_without_a_class_is_refused():
    with pytest.raises(TypeError, match="InferenceStage has 0 deployment classes"):
        classes_by_stage([wrapper("Decode", DecodeStage), wrapper("Export", ExportStage)], STAGES)


def test_a_second_class_for_a_stage_is_refused():
    classes = [wrapper(name, stage) for name, stage in [("A", DecodeStage), ("B", InferenceStage), ("C", ExportStage)]]
    with pytest.raises(TypeError, match=r"DecodeStage has 2 deployment classes \(A, Twin\)"):
        classes_by_stage([*classes, wrapper("Twin", DecodeStage)], STAGES)


def test_a_class_of_an_undeclared_stage_is_refused():
    class Unlisted(Stage):
        name = "unlisted"

    with pytest.raises(TypeError, match="Stray wraps Unlisted, which is not a declared stage"):
        classes_by_stage([wrapper("Stray", Unlisted)], ())
