"""User-caused data conditions: corrupt TFRecord files, the wrong --input_file_format, gzip input, a huge
vocabulary, the extra-features hint. Each is a `UserError` naming the file and the fix."""

import gzip
import os
import time

import numpy as np
import pytest

from tests.data.conftest import SAMPLE_SCHEMA, pair
from tfrs_twotower.data import make_dataset
from tfrs_twotower.data.jsonl import write_jsonl
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser
from tfrs_twotower.data.scan import TooManyBadRecordsError, scan
from tfrs_twotower.data.tfrecord import read_tfrecord, write_tfrecord
from tfrs_twotower.errors import DataError, UserError
from tfrs_twotower.schema import SchemaError, load_schema

RECORDS = [pair(i) for i in range(40)]


def corrupt_copy(path, out, at_fraction=0.5):
    data = bytearray(open(path, "rb").read())
    start = int(len(data) * at_fraction)
    for i in range(64):
        data[start + i] ^= 0xFF
    open(out, "wb").write(bytes(data))
    return out


@pytest.fixture
def tfrecord(tmp_path):
    path = str(tmp_path / "train.tfrecord")
    write_tfrecord(RECORDS, path, SAMPLE_SCHEMA)
    return path


def test_corrupt_tfrecord_names_file_and_record_and_counts_as_bad(tfrecord, tmp_path):
    bad = corrupt_copy(tfrecord, str(tmp_path / "bad.tfrecord"))
    with pytest.raises(TooManyBadRecordsError, match=r"bad\.tfrecord record \d+: corrupted TFRecord data"):
        scan(bad, SAMPLE_SCHEMA, file_format="tfrecord", eval_split=0.0)
    # Within --max_bad_records: counted, and the records before the damage are used, in scan and dataset.
    result = scan([bad, tfrecord], SAMPLE_SCHEMA, file_format="tfrecord", eval_split=0.0, max_bad_records=1)
    assert result.rejected_count == 1
    readable = result.records_read - 1
    assert 10 < readable - len(RECORDS) < len(RECORDS) and result.train_count == readable
    dataset = make_dataset(
        [bad, tfrecord],
        SAMPLE_SCHEMA,
        batch_size=7,
        file_format="tfrecord",
        eval_split=0.0,
        skip=result.skip,
        shuffle_buffer=0,
    )
    assert sum(int(b["query"]["user_id"].shape[0]) for b in dataset) == readable


def test_corrupt_tfrecord_read_directly_is_a_bad_record_error(tfrecord, tmp_path):
    bad = corrupt_copy(tfrecord, str(tmp_path / "bad.tfrecord"))
    with pytest.raises(BadRecordError, match=r"bad\.tfrecord record \d+: corrupted TFRecord data") as info:
        list(read_tfrecord(bad, RecordParser(SAMPLE_SCHEMA)))
    assert isinstance(info.value, UserError)


def test_tfrecord_format_on_a_jsonl_file(tmp_path):
    path = str(tmp_path / "train.tfrecord")  # JSON Lines under a TFRecord name
    write_jsonl(RECORDS, path)
    with pytest.raises(
        DataError,
        match=r"train\.tfrecord is not a TFRecord file: .*looks like JSON Lines\. "
        r"Pass --input_file_format jsonl",
    ):
        scan(path, SAMPLE_SCHEMA, file_format="tfrecord")


@pytest.mark.parametrize("file_format", ["jsonl", "tfrecord"])
def test_gzip_files_are_read_like_plain_ones(tmp_path, file_format, tfrecord):
    plain = str(tmp_path / "train.jsonl")
    if file_format == "jsonl":
        write_jsonl(RECORDS, plain)
    else:
        plain = tfrecord
    packed = plain + ".gz"
    with open(plain, "rb") as f, gzip.open(packed, "wb") as g:
        g.write(f.read())
    expected = scan(plain, SAMPLE_SCHEMA, file_format=file_format, eval_split=0.0)
    got = scan(packed, SAMPLE_SCHEMA, file_format=file_format, eval_split=0.0)
    assert (got.records_read, got.train_count, got.rejected_count) == (40, 40, 0)
    assert got.numeric_stats["query"]["age"].mean == expected.numeric_stats["query"]["age"].mean
    batches = list(
        make_dataset(
            packed,
            SAMPLE_SCHEMA,
            batch_size=40,
            file_format=file_format,
            eval_split=0.0,
            shuffle_buffer=0,
        )
    )
    np.testing.assert_array_equal(
        batches[0]["query"]["user_id"].numpy(), [f"u{i}".encode() for i in range(40)]
    )


def test_a_truncated_gzip_file_says_so(tmp_path):
    plain = str(tmp_path / "train.jsonl")
    write_jsonl(RECORDS, plain)
    packed = str(tmp_path / "train.jsonl.gz")
    data = gzip.compress(open(plain, "rb").read())
    open(packed, "wb").write(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train\.jsonl\.gz: the gzip data is damaged .*gzip -t"):
        scan(packed, SAMPLE_SCHEMA)


def test_a_large_vocabulary_loads_in_linear_time():
    vocab = [f"value_{i}" for i in range(200_000)]
    schema = {
        "query": {"c": {"feature_type": "Categorical", "config": {"vocab": vocab}}},
        "candidate": {"i": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    }
    started = time.perf_counter()
    spec = load_schema(schema).feature("query", "c")
    assert time.perf_counter() - started < 1.0  # was quadratic: 40K entries took 60 s
    assert len(spec.vocab) == 200_000
    schema["query"]["c"]["config"]["vocab"] = vocab + ["value_7", "value_3"]
    with pytest.raises(SchemaError, match=r"duplicate values \['value_3', 'value_7'\]"):
        load_schema(schema)


def test_unknown_feature_hint_names_the_flag_and_the_argument():
    record = pair(0)
    record["query"]["typo"] = "x"
    with pytest.raises(BadRecordError) as info:
        RecordParser(SAMPLE_SCHEMA).pair(record, Location("f.jsonl", 0, 1))
    assert "`--allow_extra_features` on the command line, `allow_extra_features=True` in Python" in str(
        info.value
    )
    assert os.path.basename("f.jsonl") in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_data_error(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(RECORDS, str(path))
    path.chmod(0)
    with pytest.raises(DataError, match=r"train\.jsonl cannot be read \(PermissionDeniedError"):
        scan(str(path), SAMPLE_SCHEMA)


def test_a_directory_given_as_a_tfrecord_file_is_a_data_error(tmp_path):
    from tfrs_twotower.data.compression import is_gzip

    with pytest.raises(DataError, match=r"cannot be read \("):
        is_gzip(str(tmp_path))
