"""Cross-validation folds that keep neighbours together.

Clusters whose image boxes overlap share pixels: if two of them land in different
folds, the model is scored on imagery it was trained on, and the score flatters it.
:func:`linked_groups` joins points closer than a distance, and chains of them (single
linkage), into groups; :func:`group_folds` deals whole groups to folds.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

SAME_PLACE_M = 1e-3  # points closer than a millimetre are one place, whatever the distance


def linked_groups(positions: np.ndarray, distance: float) -> np.ndarray:
    """Group number (0, 1, ...) per point of ``positions`` [n, dims] (metres).

    Two points closer than ``distance`` share a group, and so does every chain of such
    neighbours. Neighbours are found on a grid of cells ``distance / sqrt(dims)``
    across (the points of one cell are all closer than ``distance``), cells are joined
    by union-find, so thousands of points take moments.
    """
    points = np.asarray(positions, np.float64)
    if points.ndim != 2 or not np.all(np.isfinite(points)):
        raise ValueError("positions must be finite, one row per point")
    if len(points) == 0:
        return np.zeros(0, np.int64)
    dims = points.shape[1]
    if distance <= SAME_PLACE_M:
        distance = SAME_PLACE_M
    keys = np.floor(points / (distance / math.sqrt(dims))).astype(np.int64)
    cell_keys, cell_of_point = np.unique(keys, axis=0, return_inverse=True)
    cell_of_point = cell_of_point.ravel()
    order = np.argsort(cell_of_point, kind="stable")
    starts = np.searchsorted(cell_of_point[order], np.arange(len(cell_keys) + 1))
    members = [order[starts[c] : starts[c + 1]] for c in range(len(cell_keys))]
    index = {key: c for c, key in enumerate(map(tuple, cell_keys.tolist()))}
    parent = list(range(len(cell_keys)))
    for key, c in index.items():
        for offset in _forward_offsets(dims):
            d = index.get(tuple(k + o for k, o in zip(key, offset)))
            if d is None or _root(parent, c) == _root(parent, d):
                continue
            if _any_closer(points[members[c]], points[members[d]], distance):
                parent[_root(parent, d)] = _root(parent, c)
    roots = np.array([_root(parent, c) for c in range(len(cell_keys))])
    return np.unique(roots[cell_of_point], return_inverse=True)[1].ravel().astype(np.int64)


def _forward_offsets(dims: int) -> list[tuple[int, ...]]:
    """Cell offsets that can hold a neighbour, one of each pair of opposites."""
    reach = math.ceil(math.sqrt(dims))
    return [o for o in itertools.product(range(-reach, reach + 1), repeat=dims) if o > (0,) * dims]


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


def _any_closer(a: np.ndarray, b: np.ndarray, distance: float, block: int = 512) -> bool:
    """Whether some point of ``a`` is closer than ``distance`` to some point of ``b``."""
    for start in range(0, len(a), block):
        diff = a[start : start + block, None, :] - b[None, :, :]
        if np.any(np.einsum("ijk,ijk->ij", diff, diff) < distance**2):
            return True
    return False


def group_folds(groups: Sequence, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per sample such that equal groups (e.g. locations) share a fold.

    Groups are dealt largest first (equal sizes in a seeded random order), each to the
    fold holding the fewest samples so far, so folds stay as even as the groups allow;
    with groups of one size this is a seeded round robin.
    """
    keys, inverse = np.unique(np.asarray(groups), return_inverse=True, axis=0)
    if len(keys) < n_folds:
        raise ValueError(f"{len(keys)} distinct locations are too few for {n_folds} folds")
    inverse = inverse.ravel()
    sizes = np.bincount(inverse, minlength=len(keys))
    order = np.random.default_rng(seed).permutation(len(keys))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(len(keys), dtype=np.int64)
    fold_sizes = np.zeros(n_folds, dtype=np.int64)
    for g in order:
        fold = int(np.argmin(fold_sizes))
        fold_of_group[g] = fold
        fold_sizes[fold] += sizes[g]
    return fold_of_group[inverse]
