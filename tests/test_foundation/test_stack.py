"""The OpenMMLab stack imports together with cmid_mm and mmcv's compiled CPU ops run."""
import importlib

import pytest
import torch


def test_all_toolboxes_import_with_cmid_mm():
    mods = {name: importlib.import_module(name)
            for name in ('mmcv', 'mmengine', 'mmpretrain', 'mmseg', 'mmdet', 'cmid_mm')}
    assert mods['mmcv'].__version__ == '2.1.0'
    assert mods['mmengine'].__version__ == '0.10.7'
    assert mods['mmpretrain'].__version__ == '1.2.0'
    assert mods['mmseg'].__version__ == '1.2.2'
    assert mods['mmdet'].__version__ == '3.3.0'
    import numpy
    assert int(numpy.__version__.split('.')[0]) < 2


def test_mmcv_cpu_ops_give_correct_results():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    dets, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert dets.shape == (2, 5)
    # RoIAlign of a constant map is that constant; of a ramp, the ramp at bin centres.
    feat = torch.arange(16.).view(1, 1, 4, 4)  # value = 4*y + x
    out = RoIAlign((1, 1), spatial_scale=1.0, sampling_ratio=1, aligned=True)(
        feat, torch.tensor([[0., 0., 0., 2., 2.]]))
    # bin centre at (y, x) = (1, 1) in aligned (pixel-centre) coordinates -> 4*0.5 + 0.5
    assert out.item() == pytest.approx(4 * 0.5 + 0.5)


def test_version_guard_names_the_package(monkeypatch):
    from cmid_mm.utils import version_guard
    with pytest.raises(ImportError, match=r'mmdet==3\.3\.0 is installed.*>=9\.0\.0,<9\.1'):
        version_guard.check_versions({'mmdet': ('9.0.0', '9.1.0')})
    with pytest.raises(ImportError, match='not-a-real-dist is not installed'):
        version_guard.check_versions({'not-a-real-dist': ('1.0', '2.0')})
    version_guard.check_versions()  # the real stack passes
