"""Pictures of CMID: MIM grids, PCA of dense features, matched cells, loss curves.

The functions return numpy arrays (uint8 RGB images, or floats in [0, 1] for ``pca_rgb``);
``tools/visualization/*.py`` write them as PNGs and ``CMIDVisualizationHook`` sends them to the
runner's visualizer. See docs/visualization.md.

The pictures of an image do not depend on the other images drawn with it: the tools seed each
image's augmentation from its file name and run the model on one image at a time (see
:mod:`cmid_mm.visualization.runtime`). The one exception is asked for: the joint PCA of
``vis_pca.py`` (its default) fits one PCA on the features of all images.
"""
from .curves import LOSS_KEYS, find_scalars, loss_curves, moving_average, read_scalars
from .image import (channel_stats, denormalize, float_to_uint8, palette, titled_grid,
                    upscale)
from .matching import (cell_box, cell_point, draw_matches, draw_source, match_rows,
                       match_segments, matched_pairs, pairs_dict)
from .mim import eval_mode, mim_grid, mim_panels, mim_reconstruct
from .pca import pca_rgb
from .runtime import (batch_pictures, build_cmid, image_seed, pipeline_batch, sample_batch,
                      slice_batch, stack_field)

__all__ = [
    'LOSS_KEYS', 'find_scalars', 'loss_curves', 'moving_average', 'read_scalars',
    'channel_stats', 'denormalize', 'float_to_uint8', 'palette', 'titled_grid', 'upscale',
    'cell_box', 'cell_point', 'draw_matches', 'draw_source', 'match_rows', 'match_segments',
    'matched_pairs', 'pairs_dict', 'eval_mode', 'mim_grid', 'mim_panels', 'mim_reconstruct',
    'pca_rgb',
    'batch_pictures', 'build_cmid', 'image_seed', 'pipeline_batch', 'sample_batch', 'slice_batch',
    'stack_field'
]
