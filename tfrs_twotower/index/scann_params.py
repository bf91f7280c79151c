"""ScaNN parameters: validation, and defaults derived from the corpus size."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Below this many candidates ScaNN scores every candidate exactly (no tree, no quantisation): the
# partitioner needs enough points per leaf, and brute force is fast enough at this size.
BRUTE_FORCE_THRESHOLD = 10_000
# Fraction of the leaves searched when `num_leaves_to_search` is not given. On clustered 64-d data
# (bench/index_bench.py) 10% of sqrt(n) leaves and 200 reordered give recall@10 >= 0.95 at 1M.
LEAVES_SEARCHED_FRACTION = 0.1


@dataclass(frozen=True)
class ScannParams:
    """The parameters a ScaNN index was built with (after defaults were resolved)."""

    brute_force: bool
    num_leaves: int | None
    num_leaves_to_search: int | None
    dimensions_per_block: int
    num_reordering_candidates: int | None
    training_iterations: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_optional_int(name: str, value, low: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(
            f"The `{name}` parameter must be an int in [{low}, inf) or None. Got {value!r} instead."
        )
    return value


def default_num_leaves(n: int) -> int:
    """About sqrt(n) leaves (so leaves hold about sqrt(n) candidates), clamped to [2, 65536]."""
    return int(min(max(round(math.sqrt(n)), 2), 65_536))


def default_num_leaves_to_search(num_leaves: int) -> int:
    """About 10% of the leaves (at least min(num_leaves, 8)): a high-recall setting."""
    return int(min(num_leaves, max(math.ceil(LEAVES_SEARCHED_FRACTION * num_leaves), 8)))


def default_num_reordering_candidates(k: int) -> int:
    """Exactly rescore max(200, 20 * k) approximate neighbours (100 gave recall@10 0.955 at 1M)."""
    return max(200, 20 * k)


def resolve(
    n: int,
    k: int,
    num_leaves: int | None,
    num_leaves_to_search: int | None,
    dimensions_per_block: int,
    num_reordering_candidates: int | None,
    training_iterations: int,
    brute_force_threshold: int,
) -> ScannParams:
    """Fills the parameters left as None from the corpus size `n` and the default `k`."""
    if n < brute_force_threshold:
        return ScannParams(True, None, None, dimensions_per_block, None, training_iterations)
    leaves = num_leaves if num_leaves is not None else default_num_leaves(n)
    if leaves > n:
        raise ValueError(
            f"The `num_leaves` parameter must be at most the number of candidates ({n}). "
            f"Got {leaves} instead."
        )
    to_search = num_leaves_to_search
    if to_search is None:
        to_search = default_num_leaves_to_search(leaves)
    if to_search > leaves:
        raise ValueError(
            f"The `num_leaves_to_search` parameter must be at most `num_leaves` ({leaves}). "
            f"Got {to_search} instead."
        )
    reorder = (
        num_reordering_candidates
        if num_reordering_candidates is not None
        else default_num_reordering_candidates(k)
    )
    reorder = min(reorder, n) or None  # 0 disables reordering
    return ScannParams(False, leaves, to_search, dimensions_per_block, reorder, training_iterations)
