"""The training-data layer: paths, record validation, readers/writers, the scan, the split, tf.data.

The usual flow (the trainer's):
```python
result = scan(paths, schema, file_format, max_bad_records=..., eval_split=...)
train = make_dataset(paths, schema, file_format, subset="train", skip=result.skip, seed=...,
                     eval_split=..., negatives=result.has_negatives)
candidates, keys = make_candidate_dataset(result.corpus, schema)
```
"""

from tfrs_twotower.data.batching import feature_signature, side_columns, side_signature
from tfrs_twotower.data.corpus import CandidateKey, Corpus
from tfrs_twotower.data.dataset import make_candidate_dataset, make_dataset
from tfrs_twotower.data.formats import FILE_FORMATS, read_records
from tfrs_twotower.data.history import add_history
from tfrs_twotower.data.jsonl import read_jsonl, write_jsonl
from tfrs_twotower.data.paths import expand_paths, resolve_paths
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser
from tfrs_twotower.data.scan import ScanResult, TooManyBadRecordsError, scan, scan_candidates
from tfrs_twotower.data.split import SplitAssigner, eval_mask
from tfrs_twotower.data.stats import NumericStats
from tfrs_twotower.data.tfrecord import read_tfrecord, write_tfrecord

__all__ = [
    "FILE_FORMATS",
    "BadRecordError",
    "CandidateKey",
    "Corpus",
    "Location",
    "NumericStats",
    "RecordParser",
    "ScanResult",
    "SplitAssigner",
    "TooManyBadRecordsError",
    "add_history",
    "eval_mask",
    "expand_paths",
    "feature_signature",
    "make_candidate_dataset",
    "make_dataset",
    "read_jsonl",
    "read_records",
    "read_tfrecord",
    "resolve_paths",
    "scan",
    "scan_candidates",
    "side_columns",
    "side_signature",
    "write_jsonl",
    "write_tfrecord",
]
