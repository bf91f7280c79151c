"""Child process of the distributed tests: train(config from argv JSON), then save the model's weights.

Usage: python worker_script.py CONFIG_JSON WEIGHTS_NPZ [LOGICAL_CPUS]
"""

import json
import sys

import numpy as np
import tensorflow as tf

if __name__ == "__main__":
    config, weights_path = json.loads(sys.argv[1]), sys.argv[2]
    if len(sys.argv) > 3:  # split the CPU into logical devices (before TensorFlow initialises)
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * int(sys.argv[3])
        )
    import tfrs_twotower as tt

    result = tt.train(tt.TrainingConfig(**config))
    weights = {f"{i}_{w.path}": np.asarray(w.numpy()) for i, w in enumerate(result.model.weights)}
    np.savez(weights_path, **weights)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    print(json.dumps({"metrics": result.metrics, "replicas": replicas}))
