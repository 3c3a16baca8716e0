"""Batch two-date inputs: per-date colour order and normalisation, then mmseg's padding."""
from numbers import Number
from typing import Any, Dict, Optional, Sequence

from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS


@MODELS.register_module()
class DualInputSegDataPreProcessor(SegDataPreProcessor):
    """:class:`SegDataPreProcessor` for a pair of images concatenated on channels.

    Each input is ``(2 * C, H, W)``: channels ``[0, C)`` are date 1, ``[C, 2C)`` date 2 (as
    :class:`MultiImgPackSegInputs` packs them). ``mean`` / ``std`` hold ``2 * C`` values, the
    first half for date 1 and the second half for date 2 (open-cd writes
    ``mean=[123.675, 116.28, 103.53] * 2``), so each date is normalised with its own
    statistics: ``out[c] = (in[c] - mean[c]) / std[c]``, in pixel units (0-255 for 8-bit
    images). ``bgr_to_rgb`` / ``rgb_to_bgr`` reverse the channel order *within* each date
    (``[2, 1, 0, 5, 4, 3]``) and therefore need two 3-channel images; colour conversion comes
    before normalisation, so ``mean``/``std`` are given in the output (e.g. RGB) order.
    Padding to ``size`` / ``size_divisor`` (``pad_val`` for images, ``seg_pad_val`` for
    labels) is mmseg's, unchanged.

    Args:
        mean, std (Sequence[Number], optional): ``2 * C`` per-channel statistics.
        Other arguments: see :class:`mmseg.models.SegDataPreProcessor`.
    """

    def __init__(self,
                 mean: Optional[Sequence[Number]] = None,
                 std: Optional[Sequence[Number]] = None,
                 size: Optional[tuple] = None,
                 size_divisor: Optional[int] = None,
                 pad_val: Number = 0,
                 seg_pad_val: Number = 255,
                 bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False,
                 batch_augments: Optional[list] = None,
                 test_cfg: Optional[dict] = None):
        for name, value in (('mean', mean), ('std', std)):
            if value is not None and len(value) % 2:
                raise ValueError(
                    f'DualInputSegDataPreProcessor: {name} has {len(value)} values; it needs '
                    'one per channel of BOTH dates (an even number, e.g. '
                    '[123.675, 116.28, 103.53] * 2)')
        super().__init__(
            mean=mean, std=std, size=size, size_divisor=size_divisor, pad_val=pad_val,
            seg_pad_val=seg_pad_val, bgr_to_rgb=bgr_to_rgb, rgb_to_bgr=rgb_to_bgr,
            batch_augments=batch_augments, test_cfg=test_cfg)
        # The parent only converts 3-channel inputs; the per-date swap is done here.
        self.swap_each_date = self.channel_conversion
        self.channel_conversion = False

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Normalise each date with its half of ``mean``/``std``, pad and stack.

        Args:
            data (dict): ``inputs``: list of ``(2C, H, W)`` uint8/float tensors;
                ``data_samples``: list of :class:`SegDataSample`.
            training (bool): training mode (pads labels too, runs batch augments).

        Returns:
            dict: ``inputs`` ``(B, 2C, H', W')`` float, ``data_samples``.
        """
        data = self.cast_data(data)
        inputs = data['inputs']
        num_ch = {int(x.shape[0]) for x in inputs}
        if len(num_ch) != 1:
            raise ValueError(f'DualInputSegDataPreProcessor: inputs of one batch have '
                             f'different channel counts {sorted(num_ch)}')
        num_ch = num_ch.pop()
        if self._enable_normalize and num_ch != self.mean.numel():
            raise ValueError(
                f'DualInputSegDataPreProcessor: inputs have {num_ch} channels but mean/std '
                f'have {self.mean.numel()} values; give one value per channel of both dates')
        if self.swap_each_date:
            if num_ch != 6:
                raise ValueError(
                    f'DualInputSegDataPreProcessor: bgr_to_rgb/rgb_to_bgr need two 3-channel '
                    f'images (6 channels), got {num_ch}; set bgr_to_rgb=False for other bands')
            data['inputs'] = [x[[2, 1, 0, 5, 4, 3], ...] for x in inputs]
        return super().forward(data, training)
