"""The candidate corpus: every distinct candidate, once, by key.

A candidate's key is the value of the candidate side's id feature (`candidate_key_feature`; default: the
first Id feature of the candidate side). With no Id feature, it is a fingerprint of the candidate's
canonical JSON (sorted keys, numbers rounded to float32 so JSONL and TFRecord data give the same key):
16 hex digits of blake2b. The first occurrence of a key is kept; later records with the same key and
different features are counted in `Corpus.conflicts`.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
...                       "candidate": {"movie": {"feature_type": "Id", "config": {"num_buckets": 9}}}})
>>> corpus = Corpus(CandidateKey(schema))
>>> corpus.add({"movie": "m1"}), corpus.add({"movie": "m1"}), len(corpus)
(True, False, 1)
"""

from __future__ import annotations

import array
import hashlib
import json
from typing import Any, Iterator

from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.schema import InputSchema, load_schema


class CandidateKey:
    """Computes a candidate's key from its normalised features.

    Args:
      schema: the input schema.
      key_feature: the candidate Id feature whose value is the key; None: the first candidate Id feature,
        or the canonical-JSON fingerprint when there is none.

    Raises:
      ValueError: when `key_feature` is not an Id feature of the candidate side.
    """

    def __init__(self, schema: InputSchema | Any, key_feature: str | None = None):
        schema = load_schema(schema)
        ids = [s.name for s in schema.candidate if feature_type_of(s).identifies]
        if key_feature is not None and key_feature not in ids:
            raise ValueError(
                f"The `candidate_key_feature` parameter must name an Id feature of the candidate side "
                f"({', '.join(ids) or 'there is none; leave it unset to use fingerprints'}). "
                f"Got {key_feature!r} instead."
            )
        self.feature = key_feature if key_feature is not None else (ids[0] if ids else None)
        self._numeric = [s.name for s in schema.candidate if feature_type_of(s).float_values]

    def __call__(self, features: dict[str, Any]) -> str:
        if self.feature is not None:
            return features[self.feature]
        canonical = dict(features)
        for name in self._numeric:
            canonical[name] = array.array("f", canonical[name]).tolist()
        text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


class Corpus:
    """Distinct candidates in first-seen order: `keys[i]` is the key of `candidates[i]`.

    Args:
      key: the `CandidateKey` that gives each candidate's key.
    """

    def __init__(self, key: CandidateKey):
        self.key = key
        self.keys: list[str] = []
        self.candidates: list[dict[str, Any]] = []
        self.conflicts = 0
        self._index: dict[str, int] = {}

    def add(self, features: dict[str, Any], key: str | None = None) -> bool:
        """Adds a candidate unless its key is known; True when it was added. `key`: its key, if known."""
        k = self.key(features) if key is None else key
        i = self._index.get(k)
        if i is None:
            self._index[k] = len(self.keys)
            self.keys.append(k)
            self.candidates.append(features)
            return True
        if self.candidates[i] != features:
            self.conflicts += 1
        return False

    def extend(self, keys: list[str], candidates: list[dict[str, Any]]) -> None:
        """Adds candidates whose keys are new and distinct (the caller checked), in order, at once."""
        start = len(self.keys)
        self._index.update(zip(keys, range(start, start + len(keys)), strict=True))
        self.keys.extend(keys)
        self.candidates.extend(candidates)

    def index_of(self, key: str) -> int:
        """The position of `key` in the corpus; KeyError when unknown."""
        return self._index[key]

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(zip(self.keys, self.candidates, strict=True))
