from .conv_layout import keep_conv_layout
from .multiband_preprocessor import MultiBandSelfSupDataPreprocessor
from .precision import at_least_fp32
from .position_matching import (DIRECTIONS, cell_centers, gather_cells, match_cells,
                                match_views, view_cell_centers)
from .wrappers import unwrap_model

__all__ = [
    'at_least_fp32', 'DIRECTIONS', 'cell_centers', 'gather_cells', 'keep_conv_layout',
    'match_cells', 'match_views', 'MultiBandSelfSupDataPreprocessor', 'unwrap_model', 'view_cell_centers'
]
