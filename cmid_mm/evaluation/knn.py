"""Weighted k-nearest-neighbour classification of frozen features (DINO's k-NN protocol).

Each test feature votes with its ``k`` most cosine-similar training features; neighbour ``j``
adds ``exp(sim_j / T)`` to the score of its class and the class with the highest score wins
(Wu et al. 2018, as used by DINO, Caron et al. 2021). A low ``T`` lets the closest neighbour
dominate; a high ``T`` tends to a plain majority vote of the ``k`` neighbours.
"""
from typing import Tuple

import torch
import torch.nn.functional as F


def knn_classify(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 k: int = 20,
                 T: float = 0.07,
                 num_classes: int = None,
                 chunk_size: int = 256) -> Tuple[torch.Tensor, torch.Tensor]:
    """Classify ``test_feats`` by a similarity-weighted vote of their ``k`` nearest neighbours.

    Args:
        train_feats: (N, C) features of the labelled set. They are L2-normalised here, so
            the dot product is the cosine similarity (already normalised input is unchanged).
        train_labels: (N, ) integer class indices in ``[0, num_classes)``.
        test_feats: (M, C) features to classify (normalised here as well).
        k: number of neighbours; more than N is clamped to N.
        T: temperature of the weights ``exp(cosine / T)`` (dimensionless, > 0).
        num_classes: number of classes; ``None`` means ``train_labels.max() + 1``.
        chunk_size: test features per similarity matrix (bounds memory to chunk x N).

    Returns:
        tuple: ``pred`` (M, ) int64 predicted class (the first class on a tie) and
        ``scores`` (M, num_classes) float: per class, the sum of the neighbour weights.
    """
    if train_feats.dim() != 2 or test_feats.dim() != 2:
        raise ValueError('train_feats and test_feats must be (N, C) and (M, C) matrices, got '
                         f'shapes {tuple(train_feats.shape)} and {tuple(test_feats.shape)}')
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f'feature sizes differ: train {train_feats.shape[1]} vs test '
                         f'{test_feats.shape[1]} channels; extract both with the same backbone')
    train_labels = torch.as_tensor(train_labels, dtype=torch.long, device=train_feats.device)
    if train_labels.shape != (train_feats.shape[0], ):
        raise ValueError(f'train_labels must have shape ({train_feats.shape[0]},) to match '
                         f'train_feats, got {tuple(train_labels.shape)}')
    if train_feats.shape[0] == 0:
        raise ValueError('train_feats is empty: k-NN needs at least one labelled feature')
    if k < 1:
        raise ValueError(f'k must be >= 1, got {k}')
    if T <= 0:
        raise ValueError(f'temperature T must be > 0, got {T}')
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    if int(train_labels.min()) < 0 or int(train_labels.max()) >= num_classes:
        raise ValueError(f'train_labels must lie in [0, {num_classes}), got range '
                         f'[{int(train_labels.min())}, {int(train_labels.max())}]')

    k = min(k, train_feats.shape[0])
    train_n = F.normalize(train_feats.float(), dim=1)
    test_n = F.normalize(test_feats.float(), dim=1)
    scores = test_n.new_zeros(test_n.shape[0], num_classes)
    for start in range(0, test_n.shape[0], chunk_size):
        sim = test_n[start:start + chunk_size] @ train_n.t()  # (m, N) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)  # (m, k)
        weights = (top_sim / T).exp()
        scores[start:start + chunk_size].scatter_add_(1, train_labels[top_idx], weights)
    return scores.argmax(dim=1), scores
