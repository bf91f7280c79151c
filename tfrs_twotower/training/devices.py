"""Accelerator settings applied before TensorFlow touches a device."""

from __future__ import annotations

import tensorflow as tf


def configure_gpu_memory(memory_mb: int | None) -> None:
    """Caps each GPU at `memory_mb` MB (Vertex's `gpu_memory_alloc`), or lets memory grow as needed.

    Must run before TensorFlow initialises the GPUs; afterwards it raises a RuntimeError that says so.
    A no-op on machines without GPUs.
    """
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            if memory_mb is None:
                tf.config.experimental.set_memory_growth(gpu, True)
            else:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_mb)]
                )
        except RuntimeError as e:
            if memory_mb is None:
                continue  # Already initialised: growth is only a preference.
            raise RuntimeError(
                "`gpu_memory_alloc` must be applied before TensorFlow initialises the GPUs: run training "
                "in a fresh process (e.g. restart the notebook kernel)."
            ) from e
