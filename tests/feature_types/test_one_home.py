"""Guard: outside `feature_types/` and `schema.py`, no module compares feature type names as strings.

Code that needs a type's rule asks the type (`feature_type_of(spec).column(...)`, `.identifies`,
`is NUMERIC`); a string comparison would be a second home that can drift from the first.
"""

import ast
import pathlib

import pytest

from tfrs_twotower.feature_types import REGISTRY

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "tfrs_twotower"
ALLOWED = {PACKAGE / "schema.py"}
ALLOWED_DIRS = {PACKAGE / "feature_types"}


def _is_type_name(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in REGISTRY if isinstance(node.value, str) else False
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_type_name(e) for e in node.elts)
    return False


def _is_feature_type(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "feature_type"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "feature_type"
    return False


def type_name_comparisons(source: str) -> list[int]:
    """Line numbers of comparisons with a type name or `feature_type`, and of dicts keyed by type name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_type_name(o) or _is_feature_type(o) for o in operands):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            if any(k is not None and _is_type_name(k) for k in node.keys):
                lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and _is_type_name(node.value):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "source,found",
    [
        ('if spec.feature_type == "Id":\n    pass', [1]),
        ('x = kind in ("Numeric", "Vector")', [1]),
        ('x = spec["feature_type"] != other', [1]),
        ('x = {"Id": 1, "Text": 2}[spec.feature_type]', [1]),
        ('schema = {"u": {"feature_type": "Id", "config": {}}}', []),
        ("x = feature_type_of(spec) is NUMERIC", []),
        ('raise ValueError(f"`{name}` is {spec.feature_type}")', []),
    ],
)
def test_the_guard_finds_string_comparisons_and_only_them(source, found):
    assert type_name_comparisons(source) == found


def test_no_module_outside_feature_types_and_schema_compares_type_names():
    modules = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p not in ALLOWED and not any(d in p.parents for d in ALLOWED_DIRS)
    ]
    assert len(modules) > 50  # the package's modules were found
    offenders = {
        str(p.relative_to(PACKAGE.parent)): lines
        for p in modules
        if (lines := type_name_comparisons(p.read_text(encoding="utf-8")))
    }
    assert offenders == {}, (
        "These lines compare feature type names; ask the type instead "
        "(tfrs_twotower.feature_types.feature_type_of(spec)): " + repr(offenders)
    )
