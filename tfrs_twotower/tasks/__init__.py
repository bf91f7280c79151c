"""Retrieval tasks: the loss (in-batch softmax and its corrections), the sampling-probability estimator,
and the corpus sampler for mixed negatives."""

from tfrs_twotower.tasks.candidate_frequencies import CandidateFrequencies
from tfrs_twotower.tasks.corpus_sampler import CorpusSampler
from tfrs_twotower.tasks.frequency_estimator import FrequencyEstimator
from tfrs_twotower.tasks.retrieval import Retrieval

__all__ = ["CandidateFrequencies", "CorpusSampler", "FrequencyEstimator", "Retrieval"]
