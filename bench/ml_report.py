"""Tables and records of the MovieLens benchmarks: the comparison's summary and table (bench/movielens.py),
and one table per protocol (bench/movielens_protocols.py), mean +- std over split seeds, with and without
seen-item exclusion; the machine and versions every JSON records.

Example:
>>> print(protocol_tables(load_runs("/tmp/bench/protocols")))  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import os
import platform
import statistics

import numpy as np

COLUMNS = ("recall_at_10", "recall_at_100")


def load_runs(folder: str) -> list[dict]:
    """Every run JSON `bench/movielens_protocols.py run` wrote into `folder`."""
    runs = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def task(protocol: str) -> str:
    """The protocol without its split seed: the runs one table averages."""
    return "/".join(protocol.split("/")[:2])


def rows(runs: list[dict], defaults: tuple[str, ...] = ()) -> dict[str, dict[str, dict]]:
    """`{task: {row name: {"all"|"excluded": {metric: [values over seeds]}}}}`; the settings named in
    `defaults` (the package's defaults, spelled out) are marked in their row names."""
    out: dict[str, dict[str, dict]] = {}
    for run in runs:
        for model, result in run["rows"].items():
            if run["setting"] == "baselines":
                name = model
            elif model == "TFRS":
                name = f"TFRS (full features), batch {run['batch_size']}, {run['epochs']} epochs"
            else:
                name = f"ours `{run['setting']}`, batch {run['batch_size']}, {run['epochs']} epochs"
                name += " (`train()`, exported model)" if run.get("path") == "train()" else ""
                name += " = **defaults**" if run["setting"] in defaults else ""
            row = out.setdefault(task(run["protocol"]), {}).setdefault(name, {"all": {}, "excluded": {}})
            for side in ("all", "excluded"):
                for metric, value in result["metrics"][side].items():
                    row[side].setdefault(metric, []).append(value)
    return out


def _cell(values: list[float]) -> str:
    if len(values) > 1:
        return f"{np.mean(values):.4f} ± {np.std(values):.4f}"
    return f"{values[0]:.4f}"


def protocol_tables(runs: list[dict], defaults: tuple[str, ...] = ()) -> str:
    """Markdown: one table per task, rows sorted by mean Recall@10 without exclusion."""
    parts = []
    for name, table in sorted(rows(runs, defaults).items()):
        seeds = max(len(r["all"]["recall_at_10"]) for r in table.values())
        parts.append(f"#### {name}" + (f" (mean ± std over {seeds} split seeds)" if seeds > 1 else ""))
        parts.append("| model | R@10 | R@100 | R@10 seen excluded | R@100 seen excluded | splits |")
        parts.append("|---|---|---|---|---|---|")
        ordered = sorted(table.items(), key=lambda kv: -np.mean(kv[1]["all"]["recall_at_10"]))
        for row_name, row in ordered:
            cells = [_cell(row[side][m]) for side in ("all", "excluded") for m in COLUMNS]
            parts.append(f"| {row_name} | {' | '.join(cells)} | {len(row['all']['recall_at_10'])} |")
        parts.append("")
    return "\n".join(parts)


def summarize(runs: list[dict]) -> dict:
    """Means of the metrics and the median of the timings over the runs."""
    out = {k: float(np.mean([r["metrics"][k] for r in runs])) for k in runs[0]["metrics"]}
    if len(runs) > 1:
        out.update({f"{k}_std": float(np.std([r["metrics"][k] for r in runs])) for k in ("recall_at_100",)})
    for key in (
        "examples_per_second",
        "examples_per_second_all_epochs",
        "train_seconds",
        "eval_seconds",
        "peak_rss_mb",
        "wall_seconds",
    ):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["runs"] = len(runs)
    return out


def _fmt(value, digits=4, comma=False):
    if value is None:
        return "-"
    return f"{value:,.0f}" if comma else f"{value:.{digits}f}"


def markdown_table(summary: dict) -> str:
    lines = [
        "| comparison | model | Recall@10 | Recall@50 | Recall@100 | NDCG@10 | train examples/s (epochs 2+) "
        "| train s | eval s | peak RSS MB | ours / TFRS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for comparison, rows in summary.items():
        for name, row in rows.items():
            ratio = row.get("ratio")
            ratio_text = (
                "-"
                if not ratio
                else (
                    f"R@100 {ratio['recall_at_100']:.3f}x (Δ {ratio['recall_at_100_delta']:+.4f}), "
                    f"speed {_fmt(ratio['examples_per_second'], 2)}x, "
                    f"eval time {_fmt(ratio['eval_seconds'], 2)}x"
                )
            )
            std = f" ± {row['recall_at_100_std']:.4f}" if row.get("recall_at_100_std") is not None else ""
            lines.append(
                f"| {comparison} | {name} | {_fmt(row['recall_at_10'])} | {_fmt(row['recall_at_50'])} | "
                f"{_fmt(row['recall_at_100'])}{std} | {_fmt(row['ndcg_at_10'])} | "
                f"{_fmt(row.get('examples_per_second'), comma=True)} | {_fmt(row.get('train_seconds'), 1)} | "
                f"{_fmt(row.get('eval_seconds'), 2)} | {_fmt(row.get('peak_rss_mb'), 0)} | {ratio_text} |"
            )
    return "\n".join(lines)


def ratio(ours: dict, tfrs: dict) -> dict:
    div = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    return {
        "recall_at_100": div(ours["recall_at_100"], tfrs["recall_at_100"]),
        "recall_at_100_delta": ours["recall_at_100"] - tfrs["recall_at_100"],
        "examples_per_second": div(ours["examples_per_second"], tfrs["examples_per_second"]),
        "eval_seconds": div(ours["eval_seconds"], tfrs["eval_seconds"]),
    }


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in (
        "tensorflow",
        "keras",
        "tf-keras",
        "tensorflow-recommenders",
        "implicit",
        "numpy",
        "scipy",
        "tfrs_twotower",
    ):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    memory = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(int(memory) / 2**20, 1),
        "platform": platform.platform(),
    }
