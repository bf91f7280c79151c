import io

from tfrs_twotower import progress


def test_step_prints_what_how_much_and_how_long_when_enabled():
    stream = io.StringIO()
    progress.enable(True, stream=stream)
    try:
        with progress.step("Encoding the candidate corpus") as done:
            done("398 candidates")
        progress.log("  ScaNN: 8 of 20 leaves searched")
    finally:
        progress.enable(False)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("Encoding the candidate corpus: 398 candidates in ") and lines[0].endswith(
        " s"
    )
    assert lines[1] == "  ScaNN: 8 of 20 leaves searched"


def test_silent_unless_enabled(capsys):
    assert not progress.enabled()
    with progress.step("Scanning"):
        pass
    progress.log("nothing")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_cli_main_restores_the_setting(tmp_path):
    from tfrs_twotower.cli import main

    assert main(["sample-data", "--output_dir", str(tmp_path), "--num_pairs", "20"]) == 0
    assert not progress.enabled()
