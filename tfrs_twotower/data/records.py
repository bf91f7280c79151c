"""One training record, validated against the input schema and normalised.

A pair record is `{"query": {name: value}, "candidate": {name: value}}`, optionally with
`"weight": number` (finite, >= 0; default 1.0) and `"negatives": [{name: value}, ...]` (explicit negative
candidates for this query, each a full candidate document). A candidate document (a line of a
`candidate_data_path` file) is `{name: value}` with the candidate side's features. Values normalise as:

| type | accepted | normalised |
|---|---|---|
| Id | a non-empty string, or a list of exactly one | `str` |
| Categorical, Text | a string or a list of strings (may be empty) | `list[str]` |
| Numeric | a finite number or a list of them (may be empty; booleans refused) | `list[float]` |
| Vector | a list of exactly `length` finite numbers | `list[float]` |

Rules chosen for strictness: every schema feature must be present (`null` is refused; write `[]` for
"no values"); NaN and infinities are refused (NaN is the padding value of batches); an unknown feature
or top-level key is an error (most often a typo) unless `allow_extra_features=True`, which ignores them.
Strings are kept exactly as given: Unicode, empty strings (`""` means "absent" in batches) and very long
text are not trimmed, lower-cased or truncated. The normalised record has `weight` and `negatives` only
when the input has them.

Errors are `BadRecordError`s naming the file, the line (JSONL, 1-based) or record (TFRecord, 1-based),
the field, what was expected and what was received.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
...                       "candidate": {"genres": {"feature_type": "Categorical",
...                                                "config": {"vocab": ["a", "b"]}}}})
>>> parser = RecordParser(schema)
>>> parser.pair({"query": {"user": "u1"}, "candidate": {"genres": "a"}}, Location("t.jsonl", 0, 1))
{'query': {'user': 'u1'}, 'candidate': {'genres': ['a']}}
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, NamedTuple

from tfrs_twotower.errors import DataError
from tfrs_twotower.feature_types import InvalidValue, describe, feature_type_of
from tfrs_twotower.feature_types.values import is_number
from tfrs_twotower.schema import InputSchema, load_schema

PAIR_KEYS = ("query", "candidate", "weight", "negatives")


class Location(NamedTuple):
    """Where a record is: its file, its 0-based index among the file's records and, for JSONL, its line.

    `index` counts records only (JSONL blank lines are not records); it is what the train/eval split and
    the skip list use. `str()` gives the human form: `train.jsonl line 17` or `train.tfrecord record 5`
    (record numbers are 1-based, like line numbers).
    """

    file: str
    index: int
    line: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file} line {self.line}"
        return f"{self.file} record {self.index + 1}"


# Where to allow extra features: the flag on the command line, the argument in Python.
ALLOW_EXTRA_HINT = "`--allow_extra_features` on the command line, `allow_extra_features=True` in Python"


class BadRecordError(DataError):
    """A record that does not match the schema.

    Attributes:
      location: the record's `Location`.
      field: the dotted path in the record (`candidate.genres`, `negatives[2].movie_id`, `weight`), or
        None when the record as a whole is bad (not JSON, not an object).
      reason: what was expected and what was received.
    """

    def __init__(self, location: Location, reason: str, field: str | None = None):
        self.location = location
        self.field = field
        self.reason = reason
        where = f"{location}: {field}: " if field else f"{location}: "
        super().__init__(where + reason)

    def __reduce__(self):
        return (BadRecordError, (self.location, self.reason, self.field))


# The value rules live with each feature type (`tfrs_twotower.feature_types`); `describe` is re-exported.


def _expected(spec) -> str:
    return feature_type_of(spec).expected(spec)


def value_checker(spec) -> Callable[[Any], Any]:
    """The function that normalises one value of `spec`'s type; raises an internal error when invalid."""
    return feature_type_of(spec).checker(spec)


class RecordParser:
    """Validates and normalises decoded records (JSON-like dicts) against a schema.

    Args:
      schema: the `InputSchema` (or anything `load_schema` reads).
      allow_extra_features: ignore features and top-level keys the schema does not know, instead of
        refusing the record.
    """

    def __init__(self, schema: InputSchema | Any, allow_extra_features: bool = False):
        self.schema = load_schema(schema)
        self.allow_extra_features = bool(allow_extra_features)
        self._sides = {
            side: [(s.name, value_checker(s), _expected(s)) for s in self.schema.side(side)]
            for side in ("query", "candidate")
        }
        self._names = {
            side: frozenset(s.name for s in self.schema.side(side)) for side in ("query", "candidate")
        }

    def feature_names(self, side: str) -> frozenset[str]:
        """The names of the schema's features on `side`."""
        return self._names[side]

    def _side(self, side: str, obj: Any, location: Location, prefix: str) -> dict[str, Any]:
        if type(obj) is not dict:
            raise BadRecordError(
                location, f"expected an object of {side} features, got {describe(obj)}", prefix
            )
        out = {}
        for name, check, expected in self._sides[side]:
            try:
                out[name] = check(obj[name])
            except KeyError:
                known = ", ".join(n for n, _, _ in self._sides[side])
                raise BadRecordError(
                    location,
                    f"missing; every record needs every schema feature (the {side} side has: {known})",
                    f"{prefix}.{name}",
                ) from None
            except InvalidValue as e:
                raise BadRecordError(
                    location, f"expected {expected}, got {describe(obj[name])}{e.detail}", f"{prefix}.{name}"
                ) from None
        if len(obj) != len(out) and not self.allow_extra_features:
            extra = sorted(k for k in obj if k not in self._names[side])
            known = ", ".join(n for n, _, _ in self._sides[side])
            raise BadRecordError(
                location,
                f"unknown feature(s) {', '.join(f'`{k}`' for k in extra)}; the schema's {side} side has: "
                f"{known}. Fix the name, add the feature to the schema, or allow extra features "
                f"({ALLOW_EXTRA_HINT}) to ignore it",
                prefix,
            )
        return out

    def candidate(self, obj: Any, location: Location, prefix: str = "candidate") -> dict[str, Any]:
        """Normalises one candidate document `{name: value}`."""
        return self._side("candidate", obj, location, prefix)

    def pair(self, obj: Any, location: Location) -> dict[str, Any]:
        """Normalises one pair record `{"query": ..., "candidate": ...[, "weight", "negatives"]}`."""
        if type(obj) is not dict:
            raise BadRecordError(
                location,
                f'expected an object {{"query": {{...}}, "candidate": {{...}}}}, got {describe(obj)}',
            )
        for side in ("query", "candidate"):
            if side not in obj:
                raise BadRecordError(
                    location, f'missing `{side}`; a record is {{"query": {{...}}, "candidate": {{...}}}}'
                )
        out = {
            "query": self._side("query", obj["query"], location, "query"),
            "candidate": self._side("candidate", obj["candidate"], location, "candidate"),
        }
        if len(obj) > 2:
            if "weight" in obj:
                w = obj["weight"]
                if not is_number(w) or w < 0:
                    raise BadRecordError(
                        location, f"expected a finite number >= 0, got {describe(w)}", "weight"
                    )
                out["weight"] = float(w)
            if "negatives" in obj:
                negs = obj["negatives"]
                if type(negs) is not list:
                    raise BadRecordError(
                        location, f"expected a list of candidate objects, got {describe(negs)}", "negatives"
                    )
                out["negatives"] = [
                    self.candidate(n, location, f"negatives[{i}]") for i, n in enumerate(negs)
                ]
            if not self.allow_extra_features:
                extra = sorted(k for k in obj if k not in PAIR_KEYS)
                if extra:
                    raise BadRecordError(
                        location,
                        f"unknown key(s) {', '.join(f'`{k}`' for k in extra)}; a record has `query`, "
                        "`candidate` and optionally `weight` and `negatives` (or allow extra features: "
                        f"{ALLOW_EXTRA_HINT})",
                    )
        return out


def parse_each(
    payloads: Iterable[tuple[Location, Any]],
    parse: Callable[[Any, Location, RecordParser, str], dict],
    parser: RecordParser,
    kind: str,
    on_error: Callable[[BadRecordError], None] | None,
) -> Iterator[tuple[Location, dict]]:
    """Parses each `(location, payload)` with `parse`; a `BadRecordError` goes to `on_error` (the record is
    then skipped) or, with `on_error` None, is raised. The readers of both formats share it."""
    for location, payload in payloads:
        try:
            record = parse(payload, location, parser, kind)
        except BadRecordError as e:
            if on_error is None:
                raise
            on_error(e)
            continue
        yield location, record
