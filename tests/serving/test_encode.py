"""`encode_documents` / `tfrs-twotower encode` end to end: both document forms, both formats, errors."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.cli import main
from tfrs_twotower.data.records import BadRecordError
from tfrs_twotower.export import read_embeddings
from tfrs_twotower.schema import load_schema
from tfrs_twotower.serving import encode_documents, instances_to_tensors, load_encoder


def write_lines(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return str(path)


def write_query_tfrecord(path, docs):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for doc in docs:
            feature = {
                "query_user_id": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[doc["user_id"].encode()])
                ),
                "query_age": tf.train.Feature(float_list=tf.train.FloatList(value=doc["age"])),
                "query_country": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[c.encode() for c in doc["country"]])
                ),
                "query_interests": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[w.encode() for w in doc["interests"]])
                ),
                "query_taste": tf.train.Feature(float_list=tf.train.FloatList(value=doc["taste"])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


def read_outputs(prefix):
    lines = [json.loads(line) for line in open(f"{prefix}.jsonl")]
    return lines, np.load(f"{prefix}.npy"), open(f"{prefix}.ids.txt").read().splitlines()


def test_candidates_match_the_trained_embeddings(job_dir, sample, tmp_path, capsys):
    prefix = str(tmp_path / "out" / "items")
    argv = [
        "encode",
        "--job-dir",
        job_dir,
        "--side",
        "candidate",
        "--input",
        sample.candidates_jsonl,
        "--output",
        prefix,
        "--batch_size",
        "7",
    ]
    assert main(argv) == 0
    assert "Encoded 80 candidate documents into 65-d embeddings" in capsys.readouterr().out  # 64 + bias
    lines, embeddings, ids = read_outputs(prefix)
    assert [line["id"] for line in lines] == ids and sorted(lines[0]) == ["embedding", "id"]
    np.testing.assert_allclose([line["embedding"] for line in lines], embeddings, atol=1e-6)
    trained_ids, trained = read_embeddings(f"{job_dir}/candidate_embeddings")
    by_id = dict(zip(ids, embeddings, strict=True))
    np.testing.assert_allclose([by_id[i] for i in trained_ids], trained, rtol=1e-5, atol=1e-5)


def test_queries_jsonl_tfrecord_and_vertex_instances_agree(job_dir, query_docs, tmp_path):
    docs = query_docs[:20]
    want = load_encoder(job_dir, "query")(
        instances_to_tensors(load_schema(f"{job_dir}/schema.json"), "query", docs)
    )
    plain = encode_documents(
        job_dir, "query", write_lines(tmp_path / "q.jsonl", docs), str(tmp_path / "plain")
    )
    assert plain.num_documents == 20 and plain.num_instances == 0 and plain.dim == 65  # 64 + bias
    tfrecord = encode_documents(
        job_dir,
        "query",
        write_query_tfrecord(tmp_path / "q.tfrecord", docs),
        str(tmp_path / "tfr"),
        file_format="tfrecord",
        batch_size=3,
    )
    instances = [{"data": json.dumps(d), "key": f"req-{i}"} for i, d in enumerate(docs)]
    instances[1]["data"] = docs[1]  # an object is accepted too
    vertex = encode_documents(
        job_dir, "query", write_lines(tmp_path / "inst.jsonl", instances), str(tmp_path / "v")
    )
    assert vertex.num_instances == 20
    for result in (plain, tfrecord, vertex):
        np.testing.assert_allclose(np.load(result.paths["npy"]), want.numpy(), rtol=1e-5, atol=1e-5)
    lines, _, ids = read_outputs(str(tmp_path / "v"))
    assert lines[0]["key"] == "req-0" and sorted(lines[0]) == ["encoding", "key"] and ids[2] == "req-2"
    assert read_outputs(str(tmp_path / "plain"))[2] == [d["user_id"] for d in docs]


def test_ids(job_dir, query_docs, tmp_path):
    path = write_lines(tmp_path / "q.jsonl", query_docs[:3])
    result = encode_documents(job_dir, "query", path, str(tmp_path / "o"), id_feature="user_id")
    assert open(result.paths["ids"]).read().split() == [d["user_id"] for d in query_docs[:3]]
    with pytest.raises(
        ValueError, match=r"The `id_feature` parameter must name an Id feature of the query side \(user_id\)"
    ):
        encode_documents(job_dir, "query", path, str(tmp_path / "o"), id_feature="age")
    keyless = write_lines(tmp_path / "k.jsonl", [{"data": json.dumps(d)} for d in query_docs[:2]])
    lines = read_outputs(
        encode_documents(job_dir, "query", keyless, str(tmp_path / "k")).paths["jsonl"][:-6]
    )[0]
    assert [line["key"] for line in lines] == [d["user_id"] for d in query_docs[:2]]


@pytest.mark.parametrize(
    "lines, message",
    [
        (["GOOD", '{"user_id": "u", "age": "x"}'], r"q.jsonl line 2: query.age: expected a finite number"),
        (["GOOD", "{not json"], r"q.jsonl line 2: not valid JSON"),
        (
            ["GOOD", '{"data": "{}", "key": "k"}'],
            r"q.jsonl line 2: a Vertex prediction instance, but the file's",
        ),
        (['{"data": "{}", "key": "k"}'], r"q.jsonl line 1: query.user_id: missing"),
        (['{"data": "{oops", "key": "k"}'], r"q.jsonl line 1: data: not a valid JSON string"),
        (["INSTANCE", "GOOD"], r"q.jsonl line 2: expected a Vertex prediction instance"),
        (["GOOD", '{"user_id": "u", "agee": 3}'], r"q.jsonl line 2: query.age: missing"),
    ],
)
def test_errors_name_file_line_side_and_feature(job_dir, query_docs, tmp_path, lines, message):
    path = tmp_path / "q.jsonl"
    known = {"GOOD": json.dumps(query_docs[0]), "INSTANCE": json.dumps({"data": json.dumps(query_docs[0])})}
    path.write_text("\n".join(known.get(line, line) for line in lines) + "\n")
    with pytest.raises(BadRecordError, match=message):
        encode_documents(job_dir, "query", str(path), str(tmp_path / "o"))


def test_tfrecord_errors_name_the_record(job_dir, query_docs, tmp_path, capsys):
    bad = dict(query_docs[1], taste=[1.0, 2.0])
    path = write_query_tfrecord(tmp_path / "q.tfrecord", [query_docs[0], bad])
    with pytest.raises(
        BadRecordError, match=r"q.tfrecord record 2: query.taste: expected a list of exactly 8"
    ):
        encode_documents(job_dir, "query", path, str(tmp_path / "o"), file_format="tfrecord")
    with pytest.raises(BadRecordError, match=r"record 1: unknown key `query_age`; a candidate document"):
        encode_documents(job_dir, "candidate", path, str(tmp_path / "o"), file_format="tfrecord")
    argv = [
        "encode",
        "--job-dir",
        job_dir,
        "--side",
        "query",
        "--input",
        path,
        "--output",
        str(tmp_path / "o"),
        "--input_file_format",
        "tfrecord",
    ]
    assert main(argv) == 2
    assert "q.tfrecord record 2: query.taste" in capsys.readouterr().err
