"""MovieLens protocols: settings of `tfrs-twotower train` against most-popular, ALS and TFRS, each scored
with and without seen-item exclusion.

Usage:
    python bench/movielens_protocols.py run --settings defaults,tfrs-parity --batch-sizes 100,1024
    python bench/movielens_protocols.py report            # the tables of docs/benchmarks.md
    python bench/movielens_protocols.py run --data DIR --smoke --out DIR   # seconds: CI smoke

Protocols (bench/ml_protocols.py): `ml-100k/random/S` (every rating a pair, 80/20 with split seed S; the
tables give mean +- std over the split seeds), `ml-100k/last` (each user's latest rating is the test
pair), `ml-1m-subset/last` (users 1-2999 of ML-1M, ratings >= 4). Our runs are `tfrs_twotower.train` with
the required flags, the repository's schema (`schemas/movielens-100k.json` / `movielens-1m.json`),
`--num_epochs`, `--train_batch_size` and the setting's flags: every other flag at its default. Each run
writes one JSON under `--out` (default /tmp/bench/protocols) and is skipped when it exists, so a grid can
be stopped and resumed; `report` reads them all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import ml_protocols  # noqa: E402
import ml_report  # noqa: E402
import ml_runs  # noqa: E402

REPO = os.path.dirname(BENCH)
SCHEMAS = {
    "ml-100k": os.path.join(REPO, "schemas", "movielens-100k.json"),
    "ml-1m-subset": os.path.join(REPO, "schemas", "movielens-1m.json"),
}
PROTOCOLS = (
    "ml-100k/random/42",
    "ml-100k/random/43",
    "ml-100k/random/44",
    "ml-100k/last",
    "ml-1m-subset/last",
)
# Named flag sets added to the required flags. `defaults` adds nothing; the others spell out every
# objective flag, so that they mean the same whatever the defaults are.
PLAIN = {"sampling_bias_correction": "none", "l2_normalize": False, "temperature": None}
SETTINGS = {
    "defaults": {},
    "tfrs-parity": dict(PLAIN),
    "counts": {**PLAIN, "sampling_bias_correction": "counts"},
    "counts-l2-t0.2": {"sampling_bias_correction": "counts", "l2_normalize": True, "temperature": 0.2},
    "counts-l2-t0.3": {"sampling_bias_correction": "counts", "l2_normalize": True, "temperature": 0.3},
    "counts-l2-t0.2-h1": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.2,
        "num_hidden_layers": 1,
    },
    "counts-l2-t0.1": {"sampling_bias_correction": "counts", "l2_normalize": True, "temperature": 0.1},
    "counts-l2-t0.05": {"sampling_bias_correction": "counts", "l2_normalize": True, "temperature": 0.05},
    "counts-l2-t0.1-mixed": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.1,
        "num_mixed_negatives": 256,
    },
    "counts-l2-t0.2-mixed": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.2,
        "num_mixed_negatives": 256,
    },
    # Issue #12, round 2 (docs/benchmarks.md): the candidate bias and the logQ weight.
    "bias": {"candidate_bias": "true"},
    "nobias": {"candidate_bias": "false"},
    "bias-a1.5": {"candidate_bias": "true", "logq_weight": 1.5},
    "bias-a2": {"candidate_bias": "true", "logq_weight": 2.0},
    "t0.3": {"candidate_bias": "false", "temperature": 0.3},
    "t0.5": {"candidate_bias": "false", "temperature": 0.5},
    "counts-l2-t0.1-hits": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.1,
        "remove_accidental_hits": True,
    },
}
# The settings that spell out the package's defaults (`defaults` names none and gets them implicitly).
DEFAULTS = ("defaults", "bias")
TFRS = {
    "model": "full",
    "optimizer": "adagrad",
    "learning_rate": 0.1,
    "hidden": [],
    "output_dim": 64,
    "seed": 42,
}


def _split(
    data_dir: str, protocol: str, cache: dict, smoke: bool, history: int = 0
) -> tuple[dict, dict, list]:
    name, kind, *seed = protocol.split("/")
    if name not in cache:
        cache[name] = ml_protocols.load(name, data_dir, smoke=smoke)
    data = cache[name]
    if protocol not in cache:
        cache[protocol] = ml_protocols.make_split(data, kind, int(seed[0]) if seed else 42, history)
    return data, cache[protocol], data["movies"]


def _flags(setting: str) -> dict:
    flags = dict(SETTINGS[setting]) if setting in SETTINGS else json.loads(setting)
    if setting in SETTINGS and setting != "defaults":
        flags.setdefault(
            "candidate_bias", "false"
        )  # the settings measured before the bias keep their meaning
    if flags.get("sampling_bias_correction") == "none":
        flags["sampling_bias_correction"] = None
    return flags


def run(args) -> None:
    cache: dict = {}
    work = os.path.join(args.out, "work")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for protocol in args.protocols.split(","):
            data, split, movies = _split(args.data, protocol, cache, args.smoke, args.history)
            paths = ml_protocols.write_split(split, movies, os.path.join(work, protocol.replace("/", "-")))
            paths["eval"] = paths["test"] if args.select == "test" else None
            runs = [("baselines", None)] * (batch == int(args.batch_sizes.split(",")[0]))
            runs += [(s, "ours") for s in args.settings.split(",") if s]
            runs += [("tfrs", "tfrs")] * args.tfrs
            for setting, kind in runs:
                key = f"{protocol.replace('/', '-')}__{setting}__b{batch}__e{args.epochs}"
                key += "__train" if args.end_to_end and kind == "ours" else ""
                key += f"__h{args.history}" if args.history and kind == "ours" else ""
                if setting == "baselines":
                    key = f"{protocol.replace('/', '-')}__baselines"
                target = os.path.join(args.out, key + ".json")
                if os.path.exists(target):
                    continue
                record = {
                    "protocol": protocol,
                    "setting": setting,
                    "batch_size": batch,
                    "epochs": args.epochs,
                    "train_pairs": len(split["train"]),
                    "test_pairs": len(split["test"]),
                    "movies": len(movies),
                    "load_before": os.getloadavg(),
                    "select": args.select,
                }
                out = os.path.join(work, "runs", key)
                if setting == "baselines":
                    record["rows"] = ml_runs.run_baselines(split, movies)
                elif kind == "tfrs":
                    settings = {**TFRS, "epochs": args.epochs, "batch_size": batch}
                    record["settings"] = settings
                    record["rows"] = {"TFRS": ml_runs.run_tfrs(settings, paths, split, movies, out)}
                else:
                    flags = {**_flags(setting), "num_epochs": args.epochs, "train_batch_size": batch}
                    record["flags"] = flags
                    schema = args.schema or SCHEMAS[data["name"]]
                    fit = ml_runs.run_ours if args.end_to_end else ml_runs.fit_stages
                    args_ = (out,) if args.end_to_end else ()
                    record["rows"] = {"ours": fit(flags, paths, schema, split, movies, *args_)}
                    record["path"] = "train()" if args.end_to_end else "stages"
                with open(target, "w") as f:
                    json.dump(record, f, indent=1, default=float)
                row = next(iter(record["rows"].values()))["metrics"]
                print(
                    f"{key}: R@10 {row['all']['recall_at_10']:.4f} R@100 {row['all']['recall_at_100']:.4f} "
                    f"excluded R@10 {row['excluded']['recall_at_10']:.4f} "
                    f"R@100 {row['excluded']['recall_at_100']:.4f}",
                    flush=True,
                )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument(
        "--data",
        default=os.path.join(os.path.dirname(REPO), "shared", "data"),
        help="folder with ml-100k/, ml-1m/ and ml-1m-cs100-subset/",
    )
    parser.add_argument("--out", default="/tmp/bench/protocols", help="one JSON per run goes here")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--settings", default="defaults", help=f"names of {list(SETTINGS)} or JSON flags")
    parser.add_argument("--batch-sizes", default="100,1024")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tfrs", action="store_true", help="also run TFRS (bench/reference_tfrs.py)")
    parser.add_argument("--schema", default=None, help="override the repository's schema")
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="our runs are whole `tfrs_twotower.train` runs in a subprocess (exports, per-epoch "
        "evaluation), not the stages in this process",
    )
    parser.add_argument(
        "--select",
        choices=("last", "test"),
        default="last",
        help="`last`: no evaluation set, the last epoch is exported (fair); `test`: the test pairs are "
        "the evaluation set and best-epoch export selects on them (Rounds 1-3 of docs/benchmarks.md)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="each pair's `history` holds at most N movies (default: `movielens.add_history`'s)",
    )
    parser.add_argument("--smoke", action="store_true", help="400 ratings of --data")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    else:
        print(ml_report.protocol_tables(ml_report.load_runs(args.out), DEFAULTS))


if __name__ == "__main__":
    main()
