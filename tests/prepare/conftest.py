"""Shared helpers of the `prepare` tests: tiny pair files (with bad lines) and an in-process pipeline run."""

import json
import pathlib

import pytest

pytest.importorskip("apache_beam", reason="apache-beam is not installed (pip install 'tfrs-twotower[beam]')")

from tfrs_twotower.prepare.flags import parser  # noqa: E402
from tfrs_twotower.prepare.pipeline import run_prepare  # noqa: E402
from tfrs_twotower.sample_data import generate_sample  # noqa: E402

IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
BAD_LINES = {
    0: [5, 17],  # file 0: lines (0-based record positions) replaced by bad records
    1: [3],
}


def run(training, schema, out, *flags, beam=IN_PROCESS):
    args = parser().parse_args(
        [
            "--training_data_path",
            str(training),
            "--input_schema_path",
            str(schema),
            "--output_dir",
            str(out),
            *map(str, flags),
        ]
    )
    return run_prepare(args, list(beam))


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    return generate_sample(str(tmp_path_factory.mktemp("sample")), num_pairs=600, seed=3)


@pytest.fixture(scope="session")
def two_files(sample, tmp_path_factory):
    """The sample's pairs in two files, with bad records at BAD_LINES: (directory, list of bad reasons)."""
    folder = tmp_path_factory.mktemp("pairs")
    lines = pathlib.Path(sample.train_jsonl).read_text().splitlines()
    halves = [lines[:350], lines[350:]]
    for index, bad in BAD_LINES.items():
        for position in bad:
            record = json.loads(halves[index][position])
            record["query"]["age"] = "old" if position % 2 else [1.0]
            if position % 2 == 0:
                del record["candidate"]["item_id"]
            halves[index][position] = json.dumps(record)
        (folder / f"part-{index}.jsonl").write_text("\n".join(halves[index]) + "\n")
    return folder
