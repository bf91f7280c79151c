"""The serving subcommands of `tfrs-twotower`: `export-index`, `encode`, `query`.

`tfrs_twotower.cli` registers them with `add_commands(subparsers)`.

Example:
    tfrs-twotower export-index --job-dir runs/sample --k 10 --flavour both
    tfrs-twotower encode --job-dir runs/sample --side candidate --input sample/candidates.jsonl \\
        --output runs/sample/encoded/items
    tfrs-twotower query --job-dir runs/sample '{"user_id": "user_00023", "age": 34, "country": "US", ...}'
    cat queries.jsonl | tfrs-twotower query --job-dir runs/sample --flavour scann --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# `data.formats.FILE_FORMATS` (a test checks): importing `data` imports TensorFlow, and `--help` should not.
FILE_FORMATS = ("jsonl", "tfrecord")
_FLAVOUR_CHOICES = ("brute_force", "scann", "both")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int in [1, inf), got {text}")
    return value


def _add_job_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--job-dir",
        "--job_dir",
        dest="job_dir",
        required=True,
        help="A job-dir written by `tfrs-twotower train`.",
    )


def add_commands(commands) -> None:
    """Adds `export-index`, `encode` and `query` to the `tfrs-twotower` subparsers."""
    export = commands.add_parser(
        "export-index",
        help="Export retrieval SavedModels (query features -> top-k ids) into job-dir/index/.",
        description="Write job-dir/index/brute_force and/or job-dir/index/scann: SavedModels whose "
        "serving_default takes the query side's raw features and returns top-k `ids` and `scores`.",
    )
    _add_job_dir(export)
    export.add_argument("--k", type=_positive_int, default=10, help="Results per query (default: 10).")
    export.add_argument(
        "--flavour", choices=_FLAVOUR_CHOICES, default="both", help="Which index (default: both)."
    )
    for name in ("num_leaves", "num_leaves_to_search", "num_reordering_candidates", "brute_force_threshold"):
        export.add_argument(
            f"--{name}",
            type=int,
            default=None,
            help=f"ScaNN `{name}` (default: derived from the corpus size).",
        )
    export.set_defaults(run=run_export_index)

    encode = commands.add_parser(
        "encode",
        help="Encode query or candidate documents with the exported encoders.",
        description='Encode documents ({feature: value} lines, Vertex instances {"data", "key"}, or '
        "TFRecord) with job-dir's exported encoder; write PREFIX.jsonl, PREFIX.npy, PREFIX.ids.txt.",
    )
    _add_job_dir(encode)
    encode.add_argument("--side", choices=("query", "candidate"), required=True, help="Which encoder.")
    encode.add_argument("--input", required=True, help="Documents: file, directory, glob or comma list.")
    encode.add_argument(
        "--input_file_format",
        "--input-file-format",
        choices=FILE_FORMATS,
        default="jsonl",
        help="jsonl or tfrecord (default: jsonl).",
    )
    encode.add_argument(
        "--output", required=True, help="Output prefix: PREFIX.jsonl, PREFIX.npy, PREFIX.ids.txt."
    )
    encode.add_argument(
        "--id_feature",
        "--id-feature",
        default=None,
        help="The Id feature giving each document's id (default: the side's id feature).",
    )
    encode.add_argument(
        "--batch_size",
        "--batch-size",
        type=_positive_int,
        default=1024,
        help="Documents per encoder call (default: 1024).",
    )
    encode.set_defaults(run=run_encode)

    query = commands.add_parser(
        "query",
        help="Print the top-k candidates for query documents.",
        description="Retrieve the top-k candidates of job-dir for query documents given as a JSON argument "
        "or on stdin (one JSON document, a JSON list, or JSON Lines).",
    )
    _add_job_dir(query)
    query.add_argument(
        "document", nargs="?", default=None, help="The query document as JSON; read from stdin when omitted."
    )
    query.add_argument("--k", type=_positive_int, default=10, help="Results per query (default: 10).")
    query.add_argument(
        "--flavour",
        choices=("brute_force", "scann"),
        default="brute_force",
        help="brute_force (exact) or scann (approximate); default: brute_force.",
    )
    query.add_argument("--json", action="store_true", help='Print {"ids": [...], "scores": [...]} per query.')
    query.add_argument(
        "--exclude",
        default=None,
        metavar="ID[,ID...]",
        help="Candidate ids to leave out of every query's results (comma-separated). A query document "
        'may also list its own under the reserved key "exclude" ("_exclude" if a query feature is named '
        'exclude): {..., "exclude": ["m1", "m2"]}.',
    )
    query.set_defaults(run=run_query)


def run_export_index(args: argparse.Namespace) -> int:
    from tfrs_twotower.serving.retrieval_export import export_retrieval_models, read_metadata

    names = ("num_leaves", "num_leaves_to_search", "num_reordering_candidates", "brute_force_threshold")
    options = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    paths = export_retrieval_models(args.job_dir, k=args.k, flavours=args.flavour, scann_options=options)
    metadata = read_metadata(args.job_dir)
    for name, path in paths.items():
        flavour = name[len("index_") :]
        info = metadata.get(flavour, {})
        params = f", ScaNN {info['params']}" if "params" in info else ""
        print(f"{flavour}: {path} (k={info.get('k')}, {info.get('num_candidates')} candidates{params})")
        recall = info.get("recall", {})
        if "recall_at_k" in recall:
            print(f"  recall@{recall['k']} vs exact: {recall['recall_at_k']} on {recall['queries']}")
    return 0


def run_encode(args: argparse.Namespace) -> int:
    from tfrs_twotower.serving.encode import encode_documents

    started = time.perf_counter()
    result = encode_documents(
        args.job_dir,
        args.side,
        args.input,
        args.output,
        file_format=args.input_file_format,
        id_feature=args.id_feature,
        batch_size=args.batch_size,
    )
    form = f" ({result.num_instances} Vertex instances)" if result.num_instances else ""
    seconds = time.perf_counter() - started
    print(
        f"Encoded {result.num_documents} {args.side} documents{form} into {result.dim}-d embeddings in "
        f"{seconds:.1f} s:"
    )
    for path in result.paths.values():
        print(f"  {path}")
    return 0


def run_query(args: argparse.Namespace) -> int:
    from tfrs_twotower.serving.query import Retriever, parse_queries

    text, source = (
        (args.document, "<argument>") if args.document is not None else (sys.stdin.read(), "<stdin>")
    )
    retriever = Retriever(args.job_dir, flavour=args.flavour, k=args.k)
    queries = list(parse_queries(text, retriever.parser, source, retriever.exclude_name))
    common = [v for v in (args.exclude or "").split(",") if v]
    results = retriever(queries, exclude=[common] * len(queries))
    documents = [q.document for q in queries]
    for n, (doc, ranked) in enumerate(zip(documents, results, strict=True)):
        if args.json:
            line = {"ids": [i for i, _ in ranked], "scores": [round(s, 6) for _, s in ranked]}
            if doc.key is not None:
                line = {"key": doc.key, **line}
            print(json.dumps(line, ensure_ascii=False))
            continue
        if len(documents) > 1:
            print(f"{'' if n == 0 else chr(10)}query {n + 1} ({doc.key or doc.location}):")
        for rank, (cid, score) in enumerate(ranked, 1):
            print(f"{rank:>3}. {cid}  {score:.4f}")
    return 0
