"""Embedding tables against the machine's memory, checked before the data scan.

An Id feature's table is `num_buckets x embedding_dim` float32 values, and the optimizer keeps as many
again per slot (Adagrad 1, Adam 2, ...). A schema asking for more than the machine has would otherwise
fail with TensorFlow's `ResourceExhaustedError` only after the (possibly long) scan; `check_table_memory`
fails at once, with the arithmetic.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"u": {"feature_type": "Id", "config": {"num_buckets": 1000}}},
...                       "candidate": {"i": {"feature_type": "Id", "config": {"num_buckets": 10}}}})
>>> [(t.name, t.rows, t.dim) for t in embedding_tables(schema)]
[('query.u', 1000, 34), ('candidate.i', 10, 11)]
"""

from __future__ import annotations

import dataclasses
import os

from tfrs_twotower.errors import ResourceLimitError
from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.schema import InputSchema

# Optimizer state per trained value (slots); unknown optimizers are assumed to keep 2.
_SLOTS = {"adagrad": 1, "sgd": 0, "adam": 2, "adamw": 2, "rmsprop": 1, "ftrl": 2, "nadam": 2, "adamax": 2}
_BYTES = 4  # float32


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    rows: int
    dim: int


def embedding_tables(schema: InputSchema) -> list[Table]:
    """The trained embedding tables the schema implies (Id and Categorical features)."""
    tables = []
    for side in ("query", "candidate"):
        for spec in schema.side(side):
            table = feature_type_of(spec).embedding_table(spec)
            if table is None:
                continue
            rows, dim = table
            tables.append(Table(f"{side}.{spec.name}", rows, int(dim)))
    return tables


def available_memory() -> int | None:
    """Bytes of memory available to this process (Linux MemAvailable, capped by a cgroup limit)."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            available = int(text) if available is None else min(available, int(text))
    if available is None and hasattr(os, "sysconf"):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pass
    return available


def check_table_memory(schema: InputSchema, optimizer: str, available: int | None = None) -> None:
    """Raises `ResourceLimitError` when the embedding tables and their optimizer state cannot fit."""
    available = available_memory() if available is None else available
    tables = embedding_tables(schema)
    if available is None or not tables:
        return
    copies = 1 + _SLOTS.get(optimizer.lower(), 2)
    need = sum(t.rows * t.dim for t in tables) * _BYTES * copies
    if need <= available:
        return
    largest = max(tables, key=lambda t: t.rows * t.dim)
    largest_bytes = largest.rows * largest.dim * _BYTES * copies
    rows_fit = max(1, int(available * 0.5 / (largest.dim * _BYTES * copies)))
    raise ResourceLimitError(
        f"The embedding tables need {_gib(need)} but this machine has {_gib(available)} available: "
        f"`{largest.name}` alone is {largest.rows:,} rows x {largest.dim} dims x {_BYTES} bytes x {copies} "
        f"(weights + {copies - 1} {optimizer} slot(s)) = {_gib(largest_bytes)}. "
        f"Lower its num_buckets in the schema (about {rows_fit:,} fit in half the memory), or its "
        "embedding_dim, or train on a machine with more memory."
    )


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:,.1f} GiB"
