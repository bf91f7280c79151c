import pytest
import tensorflow as tf

from tfrs_twotower.data import expand_paths, resolve_paths


def _touch(path: str) -> str:
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("{}\n")
    return path


@pytest.fixture
def tree(tmp_path):
    for name in ("b.jsonl", "a.jsonl", "c.txt", "_SUCCESS", ".a.jsonl.crc"):
        _touch(str(tmp_path / name))
    (tmp_path / "sub").mkdir()
    _touch(str(tmp_path / "sub" / "d.jsonl"))
    return tmp_path


def test_single_file(tree):
    assert expand_paths(str(tree / "a.jsonl")) == [str(tree / "a.jsonl")]


def test_directory_sorted_skips_hidden_and_subdirectories(tree):
    assert expand_paths(str(tree)) == [str(tree / n) for n in ("a.jsonl", "b.jsonl", "c.txt")]
    assert expand_paths(str(tree) + "/") == expand_paths(str(tree))


def test_glob(tree):
    assert expand_paths(str(tree / "*.jsonl")) == [str(tree / "a.jsonl"), str(tree / "b.jsonl")]
    assert expand_paths(str(tree / "_*")) == [str(tree / "_SUCCESS")]


def test_comma_list_keeps_order_and_dedupes(tree):
    spec = f"{tree / 'sub'}, {tree / 'b.jsonl'},{tree / '*.jsonl'}"
    assert expand_paths(spec) == [str(tree / "sub" / "d.jsonl"), str(tree / "b.jsonl"), str(tree / "a.jsonl")]
    assert resolve_paths([str(tree / "b.jsonl"), str(tree / "b.jsonl")]) == [str(tree / "b.jsonl")]


def test_ram_filesystem():
    tf.io.gfile.makedirs("ram://paths_test/dir")
    for name in ("x-1.jsonl", "x-0.jsonl", "_SUCCESS"):
        _touch(f"ram://paths_test/dir/{name}")
    expected = ["ram://paths_test/dir/x-0.jsonl", "ram://paths_test/dir/x-1.jsonl"]
    assert expand_paths("ram://paths_test/dir") == expected
    assert expand_paths("ram://paths_test/dir/x-*.jsonl") == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.jsonl", r"No such file or directory: `.*missing\.jsonl`"),
        ("*.nothing", r"No data files match the pattern `.*\*\.nothing`"),
    ],
)
def test_nothing_matches_names_the_part(tree, spec, message):
    with pytest.raises(FileNotFoundError, match=message):
        expand_paths(f"{tree / 'a.jsonl'},{tree / spec}")


def test_empty_directory_and_spec(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"directory `.*empty` holds no data files"):
        expand_paths(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="at least one"):
        expand_paths(" , ")
