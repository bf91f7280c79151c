"""Retrieval indexes with TFRS names and contracts: `BruteForce`, `ScaNN`, and `measure_recall`."""

from tfrs_twotower.index.brute_force import BruteForce
from tfrs_twotower.index.recall import measure_recall
from tfrs_twotower.index.scann import ScaNN
from tfrs_twotower.index.scann_params import ScannParams
from tfrs_twotower.index.top_k import TopK

__all__ = ["BruteForce", "ScaNN", "ScannParams", "TopK", "measure_recall"]
