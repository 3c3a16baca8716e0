"""``SelfSupDataPreprocessor`` for images with any number of bands (multispectral CMID)."""
from typing import Optional, Sequence, Union

import torch
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS


@MODELS.register_module()
class MultiBandSelfSupDataPreprocessor(SelfSupDataPreprocessor):
    """mmpretrain's ``SelfSupDataPreprocessor`` with a mean / std of any length.

    mmengine's ``ImgDataPreprocessor`` only accepts 1 or 3 values (RGB or grey). Here ``mean``
    and ``std`` have one value per band (e.g. 13 for Sentinel-2, from
    ``tools/analysis_tools/band_stats.py``), images are normalised band by band and the band
    order is never changed (``to_rgb`` / ``bgr_to_rgb`` / ``rgb_to_bgr`` are refused).

    Args:
        mean (Sequence[float]): per-band mean, in the band order of the images.
        std (Sequence[float]): per-band standard deviation (all > 0).
        pad_size_divisor, pad_value, non_blocking: as in ``SelfSupDataPreprocessor``.
    """

    def __init__(self,
                 mean: Sequence[Union[float, int]],
                 std: Sequence[Union[float, int]],
                 pad_size_divisor: int = 1,
                 pad_value: Union[float, int] = 0,
                 to_rgb: bool = False,
                 bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False,
                 non_blocking: Optional[bool] = False) -> None:
        if to_rgb or bgr_to_rgb or rgb_to_bgr:
            raise ValueError('MultiBandSelfSupDataPreprocessor keeps the band order: set '
                             'to_rgb=False (order the bands with LoadRSImageFromFile(bands=...))')
        if mean is None or std is None or len(mean) != len(std) or len(mean) == 0:
            raise ValueError(f'MultiBandSelfSupDataPreprocessor: mean ({mean}) and std ({std}) '
                             'need one value per band each, e.g. from '
                             'tools/analysis_tools/band_stats.py')
        if any(s <= 0 for s in std):
            raise ValueError(f'MultiBandSelfSupDataPreprocessor: std={list(std)} has a value '
                             '<= 0; a constant band cannot be normalised (drop it with bands=)')
        super().__init__(mean=None, std=None, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value, non_blocking=non_blocking)
        self._enable_normalize = True
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
                             False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1),
                             False)
