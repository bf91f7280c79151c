"""Symbolic links in job-dir that lead outside it: never write or delete through them.

A run deletes (`--overwrite`) and rewrites (resume, `export-index`) its outputs in job-dir. If one of them
is a link to a directory or file elsewhere, following it would delete or overwrite files that are not
the run's, so every such operation first calls `check_links` and refuses, naming the link. Links that
stay inside job-dir, and a job-dir that is itself a link, are fine. Only local paths can hold links
(`gs://` and other `tf.io.gfile` URIs are skipped).

Example:
>>> import os, tempfile
>>> root = tempfile.mkdtemp(); elsewhere = tempfile.mkdtemp()
>>> os.symlink(elsewhere, os.path.join(root, "index"))
>>> escaping_link(root, "index") == os.path.join(root, "index")
True
"""

from __future__ import annotations

import os
from typing import Iterable

from tfrs_twotower.errors import UnsafeLinkError


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _inside(path: str, real_root: str) -> bool:
    return path == real_root or path.startswith(real_root.rstrip(os.sep) + os.sep)


def escaping_link(root: str, name: str) -> str | None:
    """The first link at `root/name`, on the way to it, or under it, whose target is outside `root`."""
    if not _is_local(root):
        return None
    root = root[len("file://") :] if root.startswith("file://") else root
    real_root = os.path.realpath(root)
    current = root
    for part in [p for p in os.path.normpath(name).split(os.sep) if p not in ("", ".")]:
        current = os.path.join(current, part)
        if os.path.islink(current) and not _inside(os.path.realpath(current), real_root):
            return current
        if not os.path.lexists(current):
            return None
    if os.path.isdir(current) and not os.path.islink(current):
        for directory, subdirs, files in os.walk(current):  # does not follow links
            for entry in sorted(subdirs + files):
                path = os.path.join(directory, entry)
                if os.path.islink(path) and not _inside(os.path.realpath(path), real_root):
                    return path
    return None


def check_links(root: str, names: Iterable[str], action: str) -> None:
    """Raises `UnsafeLinkError` if any `root/name` leads outside `root` through a link.

    `action` says what the caller was about to do ("delete", "write"), for the message.
    """
    for name in names:
        link = escaping_link(root, name)
        if link is not None:
            raise UnsafeLinkError(
                f"`{link}` is a symbolic link to `{os.path.realpath(link)}`, outside job-dir `{root}`: "
                f"tfrs-twotower will not {action} files through it, as that would change files that are not "
                "this run's. Remove the link (or replace it by a real directory), or use another --job-dir."
            )
