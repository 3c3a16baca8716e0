"""Configs without copies (issue 13 item 7): shared parts live in one `_base_` file, the configs
that inherit them still resolve to their recipes, and each downstream config imports only the
cmid_mm part its toolbox needs.

The refactoring was checked by dumping every config's resolved dict before and after and
comparing them (identical apart from custom_imports and a few added helper variables); these
tests pin the values that the inheritance could most easily get wrong."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = osp.join(REPO, 'configs')


def _load(rel):
    return Config.fromfile(osp.join(CONFIGS, rel), import_custom_modules=False)


def _top_level(folder):
    return sorted(osp.relpath(p, CONFIGS)
                  for p in glob.glob(osp.join(CONFIGS, folder, '**', '*.py'), recursive=True)
                  if '_base_' not in p)


def _opencd_root():
    from tests.test_opencd.opencd_utils import find_opencd
    root, reason = find_opencd()
    if root is None:
        pytest.skip(reason)
    return root


# -- custom_imports: each toolbox's configs import that toolbox's part of cmid_mm ------------

EXPECTED_IMPORTS = {
    'segmentation': 'cmid_mm.downstream.seg',
    'detection': 'cmid_mm.downstream.det',
    'changedet': 'cmid_mm.downstream.changedet',
    'classification': 'cmid_mm',  # mmpretrain classifiers: the pretraining import registers all
}


@pytest.mark.parametrize('rel', [r for folder in EXPECTED_IMPORTS for r in _top_level(folder)])
def test_downstream_configs_import_their_toolbox_part(rel):
    cfg = _load(rel)
    expected = EXPECTED_IMPORTS[rel.split('/')[0]]
    assert cfg.custom_imports == dict(imports=[expected], allow_failed_imports=False), rel


def test_opencd_configs_import_changedet(monkeypatch):
    monkeypatch.setenv('OPENCD_ROOT', _opencd_root())
    for rel in _top_level('opencd'):
        cfg = _load(rel)
        assert cfg.custom_imports['imports'] == ['cmid_mm.downstream.changedet'], rel


@pytest.mark.parametrize('module', ['cmid_mm.downstream.seg', 'cmid_mm.downstream.det',
                                    'cmid_mm.downstream.changedet'])
def test_downstream_import_registers_runner_and_hook(module):
    """The configs name SafeRunner and PretrainedLoadCheckHook (registered by `import cmid_mm`):
    importing only the downstream part, in a fresh interpreter, must register them too."""
    code = (f'import {module}\n'
            'from mmengine.registry import HOOKS, RUNNERS\n'
            "assert RUNNERS.get('SafeRunner') is not None\n"
            "assert HOOKS.get('PretrainedLoadCheckHook') is not None\n")
    proc = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- inherited recipes resolve to the right values -------------------------------------------

@pytest.mark.parametrize('backbone,ckpt,prefix,optimizer', [
    ('r50', 'work_dirs/cmid_r50_backbone.pth', 'backbone.', 'SGD'),
    ('swin-b-w12', 'work_dirs/cmid_swin-b_backbone.pth', None, 'AdamW'),
    ('vit-b16', 'work_dirs/cmid_vit-b16_backbone_mmseg-vit.pth', None, 'AdamW'),
])
@pytest.mark.parametrize('dataset,dataset_type,num_classes', [
    ('potsdam', 'PotsdamDataset', 6),
    ('vaihingen', 'ISPRSDataset', 6),
    ('potsdam-noclutter', 'PotsdamNoClutterDataset', 5),
    ('vaihingen-noclutter', 'VaihingenNoClutterDataset', 5),
    ('loveda', 'LoveDADataset', 7),
])
def test_segmentation_recipe_times_dataset(backbone, ckpt, prefix, optimizer, dataset,
                                           dataset_type, num_classes):
    cfg = _load(f'segmentation/upernet_cmid-{backbone}_4xb4-50e_{dataset}-512x512.py')
    init = cfg.model.backbone.init_cfg
    assert (init.type, init.checkpoint, init.get('prefix')) == ('Pretrained', ckpt, prefix)
    assert cfg.model.decode_head.num_classes == num_classes
    assert cfg.model.auxiliary_head.num_classes == num_classes
    assert cfg.optim_wrapper.optimizer.type == optimizer
    assert cfg.train_cfg.max_epochs == 50
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == dataset_type
    assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
    assert cfg.runner_type == 'SafeRunner'


@pytest.mark.parametrize('rel', ['changedet/siam-upernet_cmid-r50_40k_cdd-256x256.py',
                                 'changedet/siam-upernet_cmid-r50_40k_levir-cd-512x512.py',
                                 'changedet/siam-upernet_cmid-swin-b_40k_cdd-256x256.py',
                                 'changedet/bit_cmid-r50_200e_cdd-256x256.py'])
def test_changedet_loaders_per_split(rel):
    cfg = _load(rel)
    cdd = '_cdd' in rel
    for split in ('train', 'val', 'test'):
        ds = cfg[f'{split}_dataloader'].dataset
        assert ds.type == ('CDD_Dataset' if cdd else 'LEVIR_CD_Dataset')
        assert ds.data_root == ('data/CDD' if cdd else 'data/LEVIR-CD')
        assert ds.data_prefix == dict(img_path_from=f'{split}/A', img_path_to=f'{split}/B',
                                      seg_map_path=f'{split}/label')
    train = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    test = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    if cdd:  # 256 px pairs: two flips, no crop, no test resize
        assert train.count('MultiImgRandomFlip') == 2 and 'MultiImgRandomCrop' not in train
        assert 'MultiImgResize' not in test
    else:
        assert cfg.train_dataloader.dataset.pipeline[2].crop_size == (512, 512)
        assert 'MultiImgResize' in test
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    assert cfg.val_dataloader.sampler.type == 'DefaultSampler'
    assert cfg.val_evaluator.type == 'CDIoUMetric'


def test_changedet_models_share_the_siamese_base():
    r50 = _load('changedet/siam-upernet_cmid-r50_40k_cdd-256x256.py').model
    bit = _load('changedet/bit_cmid-r50_200e_cdd-256x256.py').model
    swin = _load('changedet/siam-upernet_cmid-swin-b_40k_levir-cd-512x512.py').model
    assert r50.backbone.num_stages == 4 and r50.backbone.strides == (1, 2, 2, 2)
    assert bit.backbone.num_stages == 3 and bit.backbone.strides == (1, 2, 1)
    assert bit.backbone.out_indices == (2, ) and bit.neck.out_indices == (0, )
    assert 'auxiliary_head' not in bit and bit.decode_head.type == 'BITHead'
    assert swin.backbone.type == 'mmseg.SwinTransformer' and 'depth' not in swin.backbone
    assert swin.decode_head.in_channels == [256, 512, 1024, 2048]
    assert swin.auxiliary_head.in_channels == 1024
    assert r50.decode_head.in_channels == [512, 1024, 2048, 4096]
    for model in (r50, bit, swin):
        assert model.data_preprocessor.type == 'DualInputSegDataPreProcessor'


def test_opencd_swin_b_parts(monkeypatch):
    monkeypatch.setenv('OPENCD_ROOT', _opencd_root())
    changer = _load('opencd/cmid_swin-b_changer-ex_levir-cd.py')
    bit = _load('opencd/cmid_swin-b_bit_levir-cd.py')
    r50_changer_cdd = _load('opencd/cmid_r50_changer-ex_cdd.py')
    assert changer.model.backbone.type == 'mmseg.IA_SwinTransformer'
    assert changer.model.backbone.depths == [2, 2, 18, 2]
    assert changer.model.backbone.interaction_cfg[1] == dict(type='SpatialExchange', p=0.5)
    assert changer.model.decode_head.in_channels == [128, 256, 512, 1024]
    assert changer.model.decode_head.sampler.type == 'mmseg.OHEMPixelSampler'
    assert bit.model.backbone.type == 'mmseg.SwinTransformer'
    assert bit.model.backbone.depths == [2, 2, 18] and bit.model.backbone.out_indices == (2, )
    for cfg in (changer, bit):
        assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999),
                                                   weight_decay=0.01)
        assert [s.type for s in cfg.param_scheduler] == ['LinearLR', 'PolyLR']
        assert cfg.model.backbone.init_cfg.checkpoint == 'work_dirs/cmid_swin-b_backbone.pth'
    crop = [t for t in changer.train_dataloader.dataset.pipeline
            if t.type == 'MultiImgRandomCrop']
    assert len(crop) == 1 and crop[0].crop_size == (512, 512)
    cdd_types = [t.type for t in r50_changer_cdd.train_dataloader.dataset.pipeline]
    assert 'MultiImgRandomCrop' not in cdd_types and 'MultiImgExchangeTime' in cdd_types
    assert r50_changer_cdd.optim_wrapper.optimizer.lr == 0.005


def test_cmid_views_at_three_sizes():
    """One definition of the view transforms; the recipe, the demo and the study set the size."""
    for rel, size in (('cmid_resnet50_pretrain.py', 224), ('cmid_demo_resnet18_rs-sample.py', 128),
                      (osp.join('..', 'projects', 'benchmarks', 'configs', 'cmid.py'), 96)):
        pipeline = _load(rel).train_dataloader.dataset.pipeline
        view_a, view_b = next(t for t in pipeline if t.type == 'CMIDMultiView').transforms
        assert [t.type for t in view_a] == ['RandomResizedCropWithBox', 'RandomFlip',
                                            'BlockMaskGenerator'], rel
        assert [t.type for t in view_b] == [
            'RandomResizedCropWithBox', 'RandomFlip', 'RandomApply', 'GaussianBlur',
            'RandomGaussianNoise', 'Solarize', 'RandomGrayscale', 'BlockMaskGenerator'], rel
        assert view_a[0].scale == view_b[0].scale == size, rel
        assert view_a[0].backend == 'pillow', rel
        assert view_b[-1].input_size == size, rel
    s2 = _load('cmid_demo_resnet18_s2-13band.py').train_dataloader.dataset.pipeline
    view_a, view_b = s2[2].transforms
    assert view_a[0].backend == 'cv2' and view_a[0].scale == 128
    assert [t.type for t in view_b][2:5] == ['RandomBandGainJitter', 'RandomBandGaussianBlur',
                                             'RandomGaussianNoise']


@pytest.mark.parametrize('rel,num_classes', [('classification/cmid_r50_ft_aid.py', 30),
                                             ('classification/cmid_swin-b_ft_nwpu.py', 45),
                                             ('classification/cmid_swin-b_ft_ucm.py', 21)])
def test_classification_recipe_times_dataset(rel, num_classes):
    cfg = _load(rel)
    assert cfg.model.head.num_classes == num_classes
    assert cfg.data_preprocessor.num_classes == num_classes
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    assert cfg.train_cfg.max_epochs == 200


# -- no copies ---------------------------------------------------------------------------------

@pytest.mark.parametrize('snippet,where', [
    # the CMID view B augmentations
    ("dict(type='RandomGaussianNoise', prob=0.6, var_range=(10., 50.))", ''),
    ("type='RandomResizedCropWithBox'", ''),
    # the change-detection dataloaders
    ("img_path_from='val/A'", 'changedet'),
    # mmseg's Swin fine-tuning optimiser of the open-cd configs
    ('lr=0.00006', 'opencd'),
    # the (mmseg) Swin-B backbone of the change-detection models, changedet and open-cd
    ('depths=[2, 2, 18, 2]', ('opencd', 'changedet', '_base_')),
    # the ChangerEx augmentation
    ("type='MultiImgExchangeTime'", 'opencd'),
])
def test_shared_parts_are_written_once(snippet, where):
    folders = where if isinstance(where, tuple) else (where, )
    files = [p for folder in folders
             for p in glob.glob(osp.join(CONFIGS, folder, '**', '*.py'), recursive=True)
             if snippet in open(p, encoding='utf-8').read()]
    assert len(files) == 1, [osp.relpath(p, CONFIGS) for p in files]


def test_dataset_configs_hold_no_recipe():
    """A <model>_<dataset> config names its recipe and its dataset, and at most sets the class
    count: the model, schedule and weights are not written again per dataset."""
    for rel in _top_level('segmentation') + _top_level('classification'):
        if 'multispectral' in rel or 'linear' in rel:
            continue
        code = [line for line in open(osp.join(CONFIGS, rel), encoding='utf-8')
                if line.strip() and not line.lstrip().startswith('#')]
        assert len(code) <= 5, (rel, code)
        assert not any(line.startswith('checkpoint =') for line in code), rel
    assert os.path.isfile(osp.join(CONFIGS, 'segmentation', '_base_',
                                   'upernet_cmid-r50_4xb4-50e.py'))
