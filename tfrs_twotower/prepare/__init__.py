"""`tfrs-twotower prepare`: an Apache Beam pipeline that validates, splits and summarises training data
once, so that `train --prepared_data_path DIR` starts without a scan (see `pipeline` and `summary`).

Apache Beam is optional (`pip install 'tfrs-twotower[beam]'`): only `pipeline.run_prepare` imports it.

Example:
    tfrs-twotower prepare --training_data_path data/*.jsonl --input_schema_path schema.json \\
        --output_dir prepared --direct_num_workers 2
    tfrs-twotower train --prepared_data_path prepared --input_schema_path schema.json --job-dir runs/p
"""
