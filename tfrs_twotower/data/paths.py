"""Expanding a data path spec into a sorted list of files, via `tf.io.gfile` (so `gs://` works like local).

A spec is a file, a directory (its files, not recursive), a glob (`data/train-*.jsonl`), or a
comma-separated list of any of these. Names starting with `.` or `_` (`.crc` files, `_SUCCESS`,
`_temporary/`) are skipped in directory listings and in glob results, unless the glob's own name part
starts with one of them. Every part must match at least one file.

Example:
>>> import tensorflow as tf
>>> tf.io.gfile.makedirs("ram://paths_doc")
>>> for name in ("b.jsonl", "a.jsonl", "_SUCCESS"):
...     with tf.io.gfile.GFile(f"ram://paths_doc/{name}", "w") as f:
...         _ = f.write("")
>>> expand_paths("ram://paths_doc")
['ram://paths_doc/a.jsonl', 'ram://paths_doc/b.jsonl']
"""

from __future__ import annotations

import posixpath
from typing import Sequence

import tensorflow as tf

_GLOB_CHARS = frozenset("*?[")


def _basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def _is_hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _expand_one(part: str) -> list[str]:
    if any(c in _GLOB_CHARS for c in part):
        wants_hidden = _is_hidden(_basename(part))
        matches = sorted(tf.io.gfile.glob(part))
        files = [
            m for m in matches if (wants_hidden or not _is_hidden(_basename(m))) and not tf.io.gfile.isdir(m)
        ]
        if not files:
            raise FileNotFoundError(
                f"No data files match the pattern `{part}`"
                + (f" ({len(matches)} match(es), all directories or hidden files)" if matches else "")
                + "; check the path, or pass a directory or a comma-separated list of files."
            )
        return files
    if tf.io.gfile.isdir(part):
        names = sorted(n.rstrip("/") for n in tf.io.gfile.listdir(part))
        files = [f"{part.rstrip('/')}/{n}" for n in names if not _is_hidden(n)]
        files = [f for f in files if not tf.io.gfile.isdir(f)]
        if not files:
            raise FileNotFoundError(
                f"The directory `{part}` holds no data files (subdirectories, hidden files and `_SUCCESS` "
                "markers are skipped)."
            )
        return files
    if tf.io.gfile.exists(part):
        return [part]
    raise FileNotFoundError(
        f"No such file or directory: `{part}`; check the path (a file, a directory or a glob)."
    )


def expand_paths(spec: str) -> list[str]:
    """Expands a path spec (file, directory, glob or a comma-separated list of these) into files.

    Args:
      spec: the spec, e.g. `"gs://bucket/train/"`, `"data/*.jsonl"`, `"a.jsonl,b.jsonl"`.

    Returns:
      The files, each part's matches sorted, parts in the given order, each file once.

    Raises:
      FileNotFoundError: naming the part that matches no file.
      ValueError: when `spec` is empty.
    """
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a string path spec. Got {type(spec).__name__} instead.")
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"The data path spec must name at least one file, directory or glob. Got {spec!r}.")
    seen: dict[str, None] = {}
    for part in parts:
        for path in _expand_one(part):
            seen.setdefault(path, None)
    return list(seen)


def resolve_paths(paths: str | Sequence[str]) -> list[str]:
    """`expand_paths` for a spec or a list of specs: the files of all, in order, each once."""
    if isinstance(paths, str):
        return expand_paths(paths)
    if not paths:
        raise ValueError("`paths` must name at least one file, directory or glob. Got an empty list.")
    files: dict[str, None] = {}
    for spec in paths:
        for path in expand_paths(spec):
            files.setdefault(path, None)
    return list(files)
