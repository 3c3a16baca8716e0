from .multiband_preprocessor import MultiBandSelfSupDataPreprocessor
from .position_matching import cell_centers, gather_cells, match_cells

__all__ = [
    'cell_centers', 'gather_cells', 'match_cells', 'MultiBandSelfSupDataPreprocessor'
]
