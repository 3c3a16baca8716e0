from pathlib import Path

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmpretrain.datasets import CustomDataset
from PIL import Image

import cmid_mm.datasets  # noqa: F401  (registers the transforms)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/_base_/datasets/cmid_pipeline_rgb.py'
SAMPLE = REPO / 'data/rs_sample'


def build_pipeline():
    cfg = Config.fromfile(str(CONFIG))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Compose(cfg.train_pipeline)


def test_pipeline_on_real_tile():
    torch.manual_seed(0)
    np.random.seed(0)
    pipeline = build_pipeline()
    path = str(sorted((SAMPLE / 'images').glob('s2_*.png'))[7])
    packed = pipeline(dict(img_path=path))
    inputs, sample = packed['inputs'], packed['data_samples']
    assert len(inputs) == 2
    assert all(v.shape == (3, 224, 224) and v.dtype == torch.uint8 for v in inputs)
    assert sample.mask.shape == (2, 56, 56)
    assert sample.mask.flatten(1).sum(1).tolist() == [30 * 64, 30 * 64]
    assert sample.crop_bbox.shape == (2, 4) and sample.flip.shape == (2, )
    np.testing.assert_array_equal(sample.crop_src_shape, [[128, 128], [128, 128]])
    assert sample.img_path == path

    # View A has no colour augmentation: it is exactly the recorded box of the file,
    # resized with PIL bicubic and mirrored if the flip flag is set.
    src = mmcv.imread(path)  # BGR, as LoadImageFromFile
    top, left, height, width = sample.crop_bbox[0].astype(int)
    crop = src[top:top + height, left:left + width]
    expected = np.asarray(Image.fromarray(crop).resize((224, 224), Image.BICUBIC))
    if sample.flip[0]:
        expected = expected[:, ::-1]
    np.testing.assert_array_equal(inputs[0].permute(1, 2, 0).numpy(), expected)
    area = height * width / 128**2
    assert 0.29 <= area <= 1.0 and 0.74 <= width / height <= 1.35


def test_views_differ_across_seeds_and_repeat_with_seed():
    pipeline = build_pipeline()
    path = str(sorted((SAMPLE / 'images').glob('neon*.png'))[0])
    boxes = []
    for seed in (1, 2, 1):
        np.random.seed(seed)
        boxes.append(pipeline(dict(img_path=path))['data_samples'].crop_bbox)
    assert not np.array_equal(boxes[0], boxes[1])
    np.testing.assert_array_equal(boxes[0], boxes[2])


def test_sample_folder_is_a_custom_dataset():
    dataset = CustomDataset(data_root=str(SAMPLE / 'images'), with_label=False, pipeline=[])
    assert 60 <= len(dataset) <= 100
    assert sum(f.stat().st_size for f in (SAMPLE / 'images').iterdir()) < 4 * 2**20
    readme = (SAMPLE / 'README.md').read_text()
    assert all(f'| {f.name} |' in readme for f in (SAMPLE / 'images').iterdir())
