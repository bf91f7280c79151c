"""Resolving a TF Hub handle, URL or SavedModel path to a local directory, failing fast when offline."""

import hashlib
import os
import socket
import threading
import urllib.parse
import urllib.request

import tensorflow as tf

from tfrs_twotower.errors import ModelLoadError, UserError

# Set to "1" to never touch the network: a handle that is not cached fails at once.
OFFLINE_ENV = "TFRS_TWOTOWER_OFFLINE"
CONNECT_TIMEOUT_S = 2.0


class HubUnavailableError(UserError, OSError):
    """A TF Hub model is neither cached nor downloadable (no network)."""


def is_url(handle: str) -> bool:
    return urllib.parse.urlparse(handle).scheme in ("http", "https")


def cache_dir() -> str:
    """The TF Hub cache directory: TFHUB_CACHE_DIR, else `<tmp>/tfhub_modules` as `hub.resolve` uses."""
    from tensorflow_hub import resolver

    return resolver.tfhub_cache_dir(use_temp=True)


def cached_path(handle: str) -> str:
    """Where `hub.resolve` keeps (or would keep) the model of a URL handle: `<cache>/<sha1(handle)>`."""
    return os.path.join(cache_dir(), hashlib.sha1(handle.encode("utf8")).hexdigest())


def is_cached(handle: str) -> bool:
    path = cached_path(handle)
    return tf.io.gfile.isdir(path) and bool(tf.io.gfile.listdir(path))


def _unreachable_reason(url: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why `url`'s host (or its proxy) cannot be connected to within `timeout` seconds; None if it can.

    The check runs in a daemon thread so that a slow DNS lookup cannot hold the caller longer.
    """
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return f"{OFFLINE_ENV} is set"
    parsed = urllib.parse.urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[str | None] = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"connecting to {host}:{port} failed: {e}")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result[0] if result else f"connecting to {host}:{port} timed out after {timeout:g} s"


def _offline_message(handle: str, label: str, reason: str) -> str:
    from tfrs_twotower.text.presets import offline_presets

    return (
        f"The TF Hub model {label} is not in the TF Hub cache ({cache_dir()!r}; set TFHUB_CACHE_DIR to "
        f"choose it) and cannot be downloaded: {reason}. Download it where there is network access "
        f"(`tensorflow_hub.resolve({handle!r})` with the same TFHUB_CACHE_DIR) and copy the cache, "
        f"pass the path of a local SavedModel as `embedding_module`, or use an offline preset: "
        f"{', '.join(offline_presets())}."
    )


def resolve(handle: str, label: str | None = None) -> str:
    """Returns the local (or `tf.io.gfile`) directory of the SavedModel behind `handle`.

    Args:
        handle: an http(s) TF Hub handle or URL (downloaded into, or read from, the TF Hub cache), a
            `file://` URI, or a path that `tf.io.gfile` can read (local, `gs://`, ...).
        label: how to name the model in errors (e.g. the preset); defaults to the handle.

    Raises:
        HubUnavailableError: a URL that is not cached and cannot be downloaded.
        FileNotFoundError: a path that does not exist.
    """
    label = label or f"`{handle}`"
    if handle.startswith("file://"):
        handle = handle[len("file://") :]
    if not is_url(handle):
        if not tf.io.gfile.exists(handle):
            raise ModelLoadError(
                f"`embedding_module` {label} is not a preset (those start with '@'), not an http(s) TF Hub "
                f"handle, and no SavedModel exists at that path. Check the path."
            )
        return handle
    if not is_cached(handle):
        reason = _unreachable_reason(handle)
        if reason is not None:
            raise HubUnavailableError(_offline_message(handle, label, reason))
    import tensorflow_hub as hub

    try:
        return hub.resolve(handle)
    except Exception as e:  # urllib, tf.errors and ValueError all mean the same thing here
        raise HubUnavailableError(_offline_message(handle, label, f"{type(e).__name__}: {e}")) from e
