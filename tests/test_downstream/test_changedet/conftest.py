"""Fixtures of the change-detection tests."""
import pytest
from mmengine.registry import DefaultScope

# registers the change-detection modules in mmseg's registries
import cmid_mm.downstream.changedet  # noqa: F401
from tests.test_downstream.test_changedet.cd_utils import export_tiny_cmid


@pytest.fixture(scope='session')
def cmid_r18_backbone(tmp_path_factory):
    """Exported ResNet-18 CMID student: ``{'state_dict': {'backbone.*'}, 'meta'}``."""
    return export_tiny_cmid('resnet', tmp_path_factory.mktemp('cmid_r18'))


@pytest.fixture
def mmseg_scope():
    """Build pipelines / models by bare type name in mmseg's scope, as a Runner would."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield
