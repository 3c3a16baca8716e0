"""Evaluation of pretrained backbones without training a head (k-NN on frozen features)."""
from .knn import knn_classify

__all__ = ['knn_classify']
