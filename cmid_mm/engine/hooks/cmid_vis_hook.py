"""Send CMID pictures of the current training batch to the runner's visualizer."""
from typing import Optional, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from cmid_mm.models.utils.wrappers import unwrap_model
from cmid_mm.visualization.runtime import batch_pictures


def _stack(images, gap: int = 6) -> np.ndarray:
    """Pictures of equal width one above the other, white gaps between them."""
    width = max(im.shape[1] for im in images)
    parts = []
    for k, im in enumerate(images):
        if k:
            parts.append(np.full((gap, width, 3), 255, np.uint8))
        if im.shape[1] < width:
            im = np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=255)
        parts.append(im)
    return np.concatenate(parts, axis=0)


@HOOKS.register_module()
class CMIDVisualizationHook(Hook):
    """Every ``interval`` training iterations, picture the batch that was just trained on.

    After iteration ``i`` (1-based, i.e. ``runner.iter + 1``) with ``i % interval == 0`` the
    hook takes the first ``num_samples`` images of the batch, lets the student reconstruct its
    two masked views (exactly the masks of the batch; eval mode, so no BN statistics or other
    state of the model change, and no random numbers are drawn) and adds to
    ``runner.visualizer``, at ``step=i``:

    - ``cmid_mim``: per view target | masked input | reconstruction | reconstruction pasted
      into the masked blocks (see :func:`cmid_mm.visualization.mim_grid`);
    - ``cmid_matching`` (if ``draw_matches``): the position-matched cells of ``L_local`` in
      both directions, drawn on views A and B side by side.

    Samples are stacked vertically in one picture per kind. Every vis backend of the config
    receives them (``LocalVisBackend``: ``<work_dir>/<timestamp>/vis_data/vis_image/
    cmid_mim_<i>.png``; ``TensorboardVisBackend``: the IMAGES tab). Only the main process
    draws.

    Args:
        interval (int): draw every this many iterations.
        num_samples (int): images of the batch to draw (at most the batch size).
        scale (int): integer enlargement of the views in the pictures.
        draw_matches (bool): also send ``cmid_matching``.
        bands (Sequence[int], optional): channels shown as RGB (multispectral data).
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 500,
                 num_samples: int = 1,
                 scale: int = 1,
                 draw_matches: bool = True,
                 bands: Optional[Sequence[int]] = None) -> None:
        if int(interval) < 1 or int(num_samples) < 1 or int(scale) < 1:
            raise ValueError(f'CMIDVisualizationHook needs interval, num_samples and scale >= 1;'
                             f' got interval={interval}, num_samples={num_samples}, '
                             f'scale={scale}')
        self.interval = int(interval)
        self.num_samples = int(num_samples)
        self.scale = int(scale)
        self.draw_matches = draw_matches
        self.bands = bands

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if data_batch is None or not self.every_n_train_iters(runner, self.interval):
            return
        if not is_main_process():
            return
        model = unwrap_model(runner.model)
        if not (hasattr(model, 'mim_head') and hasattr(model, 'num_matches')):
            raise AttributeError(f'CMIDVisualizationHook needs a CMID model (with mim_head and '
                                 f'num_matches); got {type(model).__name__}')
        pictures = batch_pictures(model, data_batch, self.num_samples, self.scale, self.bands,
                                  self.draw_matches)
        step = runner.iter + 1
        runner.visualizer.add_image('cmid_mim', _stack(pictures['mim']), step=step)
        if self.draw_matches:
            runner.visualizer.add_image('cmid_matching', _stack(pictures['matching']),
                                        step=step)
