"""Evaluation of pretrained backbones without training a head: k-NN and linear probes on
frozen features."""
from .knn import knn_classify
from .probes import (binary_iou, classification_metrics, fit_logistic, knn_probe,
                     linear_probe, standardise)

__all__ = [
    'knn_classify', 'binary_iou', 'classification_metrics', 'fit_logistic', 'knn_probe',
    'linear_probe', 'standardise'
]
