from .cd_datasets import BaseCDFolderDataset, CDD_Dataset, LEVIR_CD_Dataset
from .transforms import (MultiImgLoadAnnotations, MultiImgLoadImageFromFile,
                         MultiImgPackSegInputs, MultiImgRandomCrop, MultiImgRandomFlip,
                         MultiImgResize)

__all__ = [
    'BaseCDFolderDataset', 'CDD_Dataset', 'LEVIR_CD_Dataset', 'MultiImgLoadAnnotations',
    'MultiImgLoadImageFromFile', 'MultiImgPackSegInputs', 'MultiImgRandomCrop',
    'MultiImgRandomFlip', 'MultiImgResize'
]
