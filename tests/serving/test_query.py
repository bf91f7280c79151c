"""`tfrs-twotower query` end to end through `main([...])`: a JSON argument, stdin, --json, errors."""

import io
import json
import shutil

import numpy as np
import pytest

from tfrs_twotower.cli import main
from tfrs_twotower.serving import Retriever


def expected(job, doc, k=10):
    """The top-k by numpy over the trained tower and the trained embeddings."""
    from tfrs_twotower.schema import load_schema
    from tfrs_twotower.serving import instances_to_tensors

    features = instances_to_tensors(load_schema(f"{job.config.job_dir}/schema.json"), "query", [doc])
    scores = job.candidate_embeddings @ job.model.query_tower(features, training=False).numpy()[0]
    rows = np.argsort(-scores, kind="stable")[:k]
    return [job.candidate_ids[r] for r in rows], scores[rows]


def printed_ranking(text):
    return [line.split()[1] for line in text.splitlines() if line.strip()[:1].isdigit()]


def test_json_argument(job, job_dir, query_docs, capsys):
    assert main(["query", "--job-dir", job_dir, json.dumps(query_docs[0])]) == 0
    out = capsys.readouterr().out
    want_ids, want_scores = expected(job, query_docs[0])
    assert printed_ranking(out) == want_ids
    assert out.splitlines()[0] == f"  1. {want_ids[0]}  {want_scores[0]:.4f}"


def test_stdin_json_lines_and_json_output(job, job_dir, query_docs, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(json.dumps(d) + "\n" for d in query_docs[:3])))
    assert main(["query", "--job-dir", job_dir, "--json", "--k", "4"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    for line, doc in zip(lines, query_docs[:3], strict=True):
        want_ids, want_scores = expected(job, doc, k=4)
        assert line["ids"] == want_ids
        np.testing.assert_allclose(line["scores"], want_scores, rtol=1e-4, atol=1e-4)


def test_stdin_text_with_several_queries_and_a_vertex_instance(job, job_dir, query_docs, capsys, monkeypatch):
    body = json.dumps([query_docs[0], {"data": json.dumps(query_docs[1]), "key": "req-7"}])
    monkeypatch.setattr("sys.stdin", io.StringIO(body))
    assert main(["query", "--job-dir", job_dir, "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "query 1 (<stdin> record 1):" in out and "query 2 (req-7):" in out
    assert printed_ranking(out) == expected(job, query_docs[0], 3)[0] + expected(job, query_docs[1], 3)[0]


def test_scann_flavour(job, job_dir, query_docs, capsys):
    assert (
        main(["query", "--job-dir", job_dir, "--flavour", "scann", "--json", json.dumps(query_docs[5])]) == 0
    )
    assert json.loads(capsys.readouterr().out)["ids"] == expected(job, query_docs[5])[0]


def test_index_sources(job, job_dir, query_docs, tmp_path):
    assert Retriever(job_dir, k=5).source == f"{job_dir}/index/brute_force"
    bigger = Retriever(job_dir, k=20)  # more than the exported k: built in memory
    assert bigger.source == "in-memory"
    assert [i for i, _ in bigger([query_docs[0]])[0]] == expected(job, query_docs[0], 20)[0]
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    shutil.rmtree(f"{copy}/index")  # a job-dir exported before the index existed
    retriever = Retriever(copy, flavour="scann", k=3)
    assert retriever.source == "in-memory"
    assert [i for i, _ in retriever([query_docs[2]])[0]] == expected(job, query_docs[2], 3)[0]


@pytest.mark.parametrize(
    "argument, message",
    [
        ('{"user_id": "u1"}', "<argument> line 1: query.age: missing"),
        ("{oops", "<argument> line 1: not valid JSON"),
        ("   ", "<argument>: no query document"),
    ],
)
def test_errors(job_dir, query_docs, capsys, argument, message):
    assert main(["query", "--job-dir", job_dir, argument]) == 2
    assert message in capsys.readouterr().err


def test_bad_flavour_and_job_dir(job_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["query", "--job-dir", job_dir, "--flavour", "hnsw", "{}"])
    assert main(["query", "--job-dir", str(tmp_path), "{}"]) == 2
    assert "schema.json is missing" in capsys.readouterr().err


def test_exclude_flag_and_per_document_exclusions(job, job_dir, query_docs, capsys, monkeypatch):
    top = expected(job, query_docs[0], 20)[0]
    argv = ["query", "--job-dir", job_dir, "--json", "--k", "5", "--exclude", f"{top[0]},{top[3]}"]
    assert main([*argv, json.dumps(query_docs[0])]) == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [top[1], top[2], top[4], top[5], top[6]]

    second = expected(job, query_docs[1], 20)[0]
    docs = [
        {**query_docs[0], "exclude": top[1:3]},
        {"data": json.dumps(query_docs[1]), "exclude": [second[0]]},
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(json.dumps(d) + "\n" for d in docs)))
    assert main([*argv[:-2], "--exclude", top[5]]) == 0
    lines = [json.loads(line)["ids"] for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == [top[0], top[3], top[4], top[6], top[7]]  # its own exclusions and the flag's
    assert lines[1] == [i for i in second if i not in (second[0], top[5])][:5]


def test_retriever_exclude_argument_in_memory_and_exported(job, job_dir, query_docs):
    top = expected(job, query_docs[4], 30)[0]
    for k in (5, 15):  # the exported index (k=10) and one built in memory
        retriever = Retriever(job_dir, k=k)
        got = retriever([query_docs[4], query_docs[4]], exclude=[top[:3], []])
        assert [i for i, _ in got[0]] == top[3 : 3 + k]
        assert [i for i, _ in got[1]] == top[:k]
        same = retriever([{**query_docs[4], "exclude": top[:2]}], exclude=[[top[2]]])
        assert [i for i, _ in same[0]] == [i for i, _ in got[0]]
    everything = Retriever(job_dir, k=5)([query_docs[4]], exclude=[job.candidate_ids[2:]])
    assert [i for i, _ in everything[0]] == sorted(
        job.candidate_ids[:2], key=expected(job, query_docs[4], 80)[0].index
    )  # 2 left, no padding
    with pytest.raises(ValueError, match=r"`exclude` must have one list of candidate ids per document \(1\)"):
        Retriever(job_dir)([query_docs[0]], exclude=[[], []])


def test_bad_exclusions_name_the_document(job_dir, query_docs, capsys):
    assert main(["query", "--job-dir", job_dir, json.dumps({**query_docs[0], "exclude": [3]})]) == 2
    assert (
        "<argument> line 1: exclude: expected a candidate id or a list of candidate ids"
        in capsys.readouterr().err
    )
