"""Frozen-feature probes in torch: linear (multinomial logistic regression), k-NN, metrics.

Used by ``projects/benchmarks/learning_signal_study.py``; no scikit-learn needed.

* :func:`fit_logistic` fits ``softmax(x W + b)`` by full-batch L-BFGS on the mean (optionally
  class-balanced) cross-entropy plus ``l2 / 2 * ||W||^2`` (the bias is not penalised).
* :func:`linear_probe` standardises the features with the training split's mean / std, picks
  ``l2`` from a grid by k-fold cross-validation **inside the training split** (folds given by
  ``groups``, e.g. spatial bands, so that overlapping neighbours do not leak across folds),
  refits on the whole training split and predicts the test split.
* :func:`knn_probe` is DINO's weighted k-NN (:func:`cmid_mm.evaluation.knn_classify`, cosine)
  or, for low-dimensional baselines, a Euclidean k-NN on standardised features.
* :func:`classification_metrics` (accuracy, balanced accuracy, macro-F1) and
  :func:`binary_iou`.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .knn import knn_classify

DEFAULT_L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def standardise(train: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6,
                dtype: torch.dtype = torch.float64):
    """Centre and scale every column by the training rows' mean and std.

    Returns ``(train_z, [others_z...], mean, std)`` in ``dtype``; constant columns get std 1.
    """
    train = train.to(dtype)
    mean = train.mean(0, keepdim=True)
    std = train.std(0, unbiased=False, keepdim=True)
    std = torch.where(std > eps, std, torch.ones_like(std))
    return (train - mean) / std, [(o.to(dtype) - mean) / std for o in others], mean, std


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n / (num_classes * n_c)`` per class (sklearn's 'balanced'); 0 for absent classes."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.zeros(num_classes, dtype=torch.float64)
    present = counts > 0
    weights[present] = labels.numel() / (int(present.sum()) * counts[present])
    return weights


def fit_logistic(x: torch.Tensor,
                 y: torch.Tensor,
                 num_classes: int,
                 l2: float = 1e-2,
                 balanced: bool = True,
                 max_iter: int = 100,
                 interp: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS (in the dtype of ``x``).

    Args:
        x: (N, D) features (standardise them first).
        y: (N, ) integer labels in ``[0, num_classes)``.
        l2: weight of ``0.5 * ||W||^2`` added to the mean loss (> 0 keeps separable data
            finite).
        balanced: weight each sample by :func:`class_weights` of its class.
        max_iter: L-BFGS iterations (it stops earlier once the loss stops changing).
        interp: optional sparse (N, M) matrix: the samples are then ``interp @ x`` for an
            (M, D) ``x`` (e.g. pixels bilinearly interpolated from M feature-map cells), and
            the logits are computed as ``interp @ (x @ W)`` without forming the N rows.

    Returns:
        ``W`` (D, num_classes) and ``b`` (num_classes, ).
    """
    if not x.is_floating_point():
        x = x.double()
    y = torch.as_tensor(y, dtype=torch.long)
    rows = x.shape[0] if interp is None else interp.shape[0]
    if x.dim() != 2 or y.shape != (rows, ):
        raise ValueError(f'x must be (N, D) and y (N,); got {tuple(x.shape)}, {tuple(y.shape)}')
    weight = class_weights(y, num_classes).to(x.dtype) if balanced else None
    w = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, requires_grad=True)
    b = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        z = x @ w
        logits = (z if interp is None else torch.sparse.mm(interp, z)) + b
        if weight is None:
            loss = F.cross_entropy(logits, y)
        else:  # weighted mean with the weights normalised to mean 1 over the samples
            per = F.cross_entropy(logits, y, reduction='none') * weight[y]
            loss = per.sum() / weight[y].sum()
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def predict_logistic(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return x.to(w.dtype) @ w + b


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean over the classes present in ``target`` of the per-class recall."""
    pred, target = pred.long().flatten(), target.long().flatten()
    recalls = []
    for c in range(num_classes):
        sel = target == c
        if sel.any():
            recalls.append((pred[sel] == c).double().mean().item())
    return float(sum(recalls) / len(recalls)) if recalls else float('nan')


def macro_f1(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean F1 over the classes present in ``target`` or ``pred``."""
    pred, target = pred.long().flatten(), target.long().flatten()
    scores = []
    for c in range(num_classes):
        tp = ((pred == c) & (target == c)).sum().item()
        fp = ((pred == c) & (target != c)).sum().item()
        fn = ((pred != c) & (target == c)).sum().item()
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores)) if scores else float('nan')


def classification_metrics(pred: torch.Tensor, target: torch.Tensor,
                           num_classes: int) -> Dict[str, float]:
    """``acc``, ``bacc`` (balanced accuracy) and ``macro_f1``, as fractions."""
    pred, target = pred.long().flatten(), target.long().flatten()
    return dict(acc=float((pred == target).double().mean().item()),
                bacc=balanced_accuracy(pred, target, num_classes),
                macro_f1=macro_f1(pred, target, num_classes))


def binary_iou(pred: torch.Tensor, target: torch.Tensor, positive: int = 1) -> float:
    """Intersection over union of the ``positive`` class (nan if both are empty)."""
    p, t = pred.flatten() == positive, target.flatten() == positive
    union = (p | t).sum().item()
    return float((p & t).sum().item() / union) if union else float('nan')


def block_confusion(pred: torch.Tensor, target: torch.Tensor, block: int,
                    positive: int = 1) -> Dict[str, List[int]]:
    """Binary confusion counts of a (H, W) label map per ``block`` x ``block`` tile.

    Tiles are taken row by row from the top left; the last row / column of tiles is narrower
    when H or W is not a multiple of ``block``. Summed over the tiles the counts are those of the
    whole map, so a metric recomputed from a resample of tiles (a spatial bootstrap) equals the
    map's metric when every tile is drawn once.

    Returns:
        ``tp``, ``fp``, ``fn``, ``tn``: one count per tile (ints, JSON-able).
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f'block_confusion: pred {tuple(pred.shape)} and target '
                         f'{tuple(target.shape)} must be the same (H, W) map')
    h, w = pred.shape
    nh, nw = -(-h // block), -(-w // block)
    p = F.pad((pred == positive).long(), (0, nw * block - w, 0, nh * block - h))
    t = F.pad((target == positive).long(), (0, nw * block - w, 0, nh * block - h))
    valid = F.pad(torch.ones(h, w, dtype=torch.long), (0, nw * block - w, 0, nh * block - h))

    def per_tile(x):
        return x.view(nh, block, nw, block).sum(dim=(1, 3)).flatten()

    tp, fp, fn = per_tile(p * t), per_tile(p * (1 - t)), per_tile((1 - p) * t)
    tn = per_tile(valid) - tp - fp - fn
    return dict(tp=tp.tolist(), fp=fp.tolist(), fn=fn.tolist(), tn=tn.tolist())


def contiguous_groups(n: int, n_folds: int) -> torch.Tensor:
    """Fold ids 0..n_folds-1 for ``n`` ordered items, in contiguous blocks."""
    return torch.div(torch.arange(n) * n_folds, max(n, 1), rounding_mode='floor')


def select_l2(x: torch.Tensor,
              y: torch.Tensor,
              num_classes: int,
              groups: Optional[torch.Tensor] = None,
              l2_grid: Sequence[float] = DEFAULT_L2_GRID,
              n_folds: int = 3,
              balanced: bool = True,
              max_iter: int = 100,
              dtype: torch.dtype = torch.float64) -> Tuple[float, Dict[float, float]]:
    """Cross-validated ``l2`` within the training split.

    Each fold is standardised with its own training part. The score is the balanced
    accuracy of the held-out fold, averaged over the folds; the best score wins and ties go
    to the larger ``l2``. Folds whose training part lacks a class still count.

    Args:
        groups: (N, ) fold id of every row; ``None``: ``n_folds`` contiguous blocks in row
            order.
    """
    y = torch.as_tensor(y, dtype=torch.long)
    groups = contiguous_groups(len(y), n_folds) if groups is None else torch.as_tensor(groups)
    folds = sorted(set(groups.tolist()))
    if len(folds) < 2:
        raise ValueError('cross-validation needs at least two groups')
    scores = {}
    for l2 in l2_grid:
        fold_scores = []
        for g in folds:
            tr, va = groups != g, groups == g
            xtr, (xva, ), _, _ = standardise(x[tr], x[va], dtype=dtype)
            w, b = fit_logistic(xtr, y[tr], num_classes, l2, balanced, max_iter)
            pred = predict_logistic(xva, w, b).argmax(1)
            fold_scores.append(balanced_accuracy(pred, y[va], num_classes))
        scores[l2] = float(sum(fold_scores) / len(fold_scores))
    best = max(scores.values())
    chosen = max(l2 for l2, s in scores.items() if s >= best - 1e-12)
    return chosen, scores


def linear_probe(train_x: torch.Tensor,
                 train_y: torch.Tensor,
                 test_x: torch.Tensor,
                 num_classes: int,
                 groups: Optional[torch.Tensor] = None,
                 l2_grid: Sequence[float] = DEFAULT_L2_GRID,
                 n_folds: int = 3,
                 balanced: bool = True,
                 max_iter: int = 100,
                 dtype: torch.dtype = torch.float64) -> Dict[str, object]:
    """Standardise, choose ``l2`` by CV inside the training split, refit, predict the test.

    Small problems run fastest single-threaded (torch.set_num_threads(1)): with several
    OpenMP threads the many tiny L-BFGS steps spend their time in thread synchronisation.

    Returns:
        dict with ``pred`` (M, ) predicted classes, ``logits`` (M, K), ``l2`` the chosen
        value, ``cv`` the CV score per grid value, and the fitted ``w``, ``b``, ``mean``,
        ``std`` (``logits = ((x - mean) / std) @ w + b``).
    """
    train_y = torch.as_tensor(train_y, dtype=torch.long)
    if len(l2_grid) == 1:
        l2, cv = float(l2_grid[0]), {}
    else:
        l2, cv = select_l2(train_x, train_y, num_classes, groups, l2_grid, n_folds, balanced,
                           max_iter, dtype)
    xtr, (xte, ), mean, std = standardise(train_x, test_x, dtype=dtype)
    w, b = fit_logistic(xtr, train_y, num_classes, l2, balanced, max_iter)
    logits = predict_logistic(xte, w, b)
    return dict(pred=logits.argmax(1), logits=logits, l2=l2, cv=cv, w=w, b=b, mean=mean,
                std=std)


def knn_probe(train_x: torch.Tensor,
              train_y: torch.Tensor,
              test_x: torch.Tensor,
              num_classes: int,
              k: int = 20,
              T: float = 0.07,
              metric: str = 'cosine') -> torch.Tensor:
    """k-NN predictions.

    ``metric='cosine'``: DINO's weighted vote (``exp(cos / T)``) on the raw features
    (:func:`knn_classify`). ``metric='euclidean'``: an unweighted majority vote of the ``k``
    nearest rows in Euclidean distance after standardising with the training statistics
    (for low-dimensional baselines, where the cosine ignores magnitude; ties: lowest class).
    """
    train_y = torch.as_tensor(train_y, dtype=torch.long)
    if metric == 'cosine':
        return knn_classify(train_x.float(), train_y, test_x.float(), k=k, T=T,
                            num_classes=num_classes)[0]
    if metric != 'euclidean':
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    xtr, (xte, ), _, _ = standardise(train_x, test_x)
    k = min(k, xtr.shape[0])
    idx = torch.cdist(xte, xtr).topk(k, dim=1, largest=False).indices
    votes = torch.zeros(xte.shape[0], num_classes, dtype=torch.float64)
    votes.scatter_add_(1, train_y[idx], torch.ones(idx.shape, dtype=torch.float64))
    return votes.argmax(1)


def bilinear_matrix(ys: torch.Tensor, xs: torch.Tensor, grid_hw: Tuple[int, int],
                    cell_per_px: Tuple[float, float],
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sparse (N, h*w) weights of bilinear interpolation of an (h, w) map at pixel centres.

    Pixel ``(y, x)`` sits at ``((y + 0.5) * cell_per_px[0], (x + 0.5) * cell_per_px[1])`` in
    map units, where cell ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``; coordinates are
    clamped to the outermost cell centres (``F.grid_sample(..., align_corners=False,
    padding_mode='border')`` computes the same values). Rows sum to 1.
    """
    h, w = grid_hw
    v = ((ys.double() + 0.5) * cell_per_px[0] - 0.5).clamp(0, h - 1)
    u = ((xs.double() + 0.5) * cell_per_px[1] - 0.5).clamp(0, w - 1)
    v0, u0 = v.floor().long(), u.floor().long()
    v1, u1 = (v0 + 1).clamp(max=h - 1), (u0 + 1).clamp(max=w - 1)
    fv, fu = v - v0, u - u0
    n = ys.numel()
    rows = torch.arange(n).repeat(4)
    cols = torch.cat([v0 * w + u0, v0 * w + u1, v1 * w + u0, v1 * w + u1])
    vals = torch.cat([(1 - fv) * (1 - fu), (1 - fv) * fu, fv * (1 - fu), fv * fu])
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), vals.to(dtype), (n, h * w),
                                   check_invariants=False).coalesce()


def interpolated_linear_probe(cells: torch.Tensor,
                              train_interp: torch.Tensor,
                              train_y: torch.Tensor,
                              num_classes: int,
                              groups: Optional[torch.Tensor] = None,
                              l2_grid: Sequence[float] = DEFAULT_L2_GRID,
                              balanced: bool = True,
                              max_iter: int = 100) -> Dict[str, object]:
    """:func:`linear_probe` of samples that are interpolations of feature-map cells.

    The training samples are ``train_interp @ cells`` (e.g. from :func:`bilinear_matrix`).
    Standardisation uses those samples' mean and std (per CV fold: the fold's training
    samples); as the rows of ``train_interp`` sum to 1, standardising the cells with them and
    interpolating gives the same standardised samples, so each L-BFGS step costs a pass over
    the M cells instead of the N samples. ``l2`` is chosen by CV over ``groups`` (as
    :func:`select_l2`), then the probe is refitted on all training samples.

    Returns:
        dict with ``l2``, ``cv``, ``w``, ``b``, ``mean``, ``std``: the logits of any sample
        ``x`` are ``((x - mean) / std) @ w + b``; since the probe is affine, the logits of
        interpolated samples are the interpolated logits of the cells.
    """
    cells = cells.float()
    train_interp = train_interp.float().coalesce()
    train_y = torch.as_tensor(train_y, dtype=torch.long)

    def fit(sel: torch.Tensor, l2: float):
        interp = torch.index_select(train_interp, 0, sel).coalesce()
        samples = torch.sparse.mm(interp, cells)
        mean = samples.mean(0, keepdim=True)
        std = samples.std(0, unbiased=False, keepdim=True)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        w, b = fit_logistic((cells - mean) / std, train_y[sel], num_classes, l2, balanced,
                            max_iter, interp=interp)
        return w, b, mean, std

    n = train_y.numel()
    groups = contiguous_groups(n, 3) if groups is None else torch.as_tensor(groups)
    cv = {}
    if len(l2_grid) > 1:
        for l2 in l2_grid:
            scores = []
            for g in sorted(set(groups.tolist())):
                tr, va = torch.nonzero(groups != g)[:, 0], torch.nonzero(groups == g)[:, 0]
                w, b, mean, std = fit(tr, l2)
                logits = torch.sparse.mm(torch.index_select(train_interp, 0, va),
                                         ((cells - mean) / std) @ w) + b
                scores.append(balanced_accuracy(logits.argmax(1), train_y[va], num_classes))
            cv[l2] = float(sum(scores) / len(scores))
        best = max(cv.values())
        l2 = max(v for v, sc in cv.items() if sc >= best - 1e-12)
    else:
        l2 = float(l2_grid[0])
    w, b, mean, std = fit(torch.arange(n), l2)
    return dict(l2=l2, cv=cv, w=w, b=b, mean=mean, std=std)

