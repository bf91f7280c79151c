"""A deterministic, built-in sample dataset: shoppers and products with a planted topic structure.

`generate_sample` writes four files into `output_dir`:

- `train.jsonl`: one `{"query": {...}, "candidate": {...}}` pair per line (a user bought an item).
- `train.tfrecord`: the same pairs, in the same order, one `tf.train.Example` each (keys `query_<name>`,
  `candidate_<name>`, see docs/architecture.md).
- `candidates.jsonl`: the candidate corpus, every item once, one `{name: value}` document per line.
- `schema.json`: the input schema (identical to `schemas/sample.json` for the default sizes).

Every feature type appears on both sides. Query: `user_id` (Id), `age` (Numeric), `country` (Categorical),
`interests` (Text, 2-4 words), `taste` (Vector of 8). Candidate: `item_id` (Id), `category` (Categorical,
1-2 values), `price` (Numeric), `title` (Text), `item_vector` (Vector of 8).

The planted structure: `NUM_TOPICS` (16) shopping topics, two per interest group (outdoor: camping and
hiking; kitchen: cookware and appliances; ...). Each user has a topic mixture (a favourite topic, a second
one, a little of the rest); each item has one topic. A purchase picks a topic
from the user's mixture (or, 5% of the time, any item by global popularity) and then an item of that topic
with a Zipf popularity skew. Every feature is a noisy function of the topics: a user's country, age,
interests and taste vector of their mixture (country and age of the favourite topic's group); an item's
categories, price, title words and vector of its topic. So features generalise across users and items,
and a personalised model beats popularity clearly.

Example:
>>> import tempfile
>>> files = generate_sample(tempfile.mkdtemp(), num_pairs=200, num_users=20, num_items=40)
>>> files.num_pairs, files.schema.endswith("schema.json")
(200, True)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower.feature_types import feature_type_of

VECTOR_LENGTH = 8
# topic -> (categories, title/interest words, preferred countries, mean age, median price)
_TOPICS: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], float, float], ...] = (
    (
        ("camping", "hiking"),
        ("tent", "trail", "backpack", "lantern", "compass", "boots", "sleeping", "bag", "summit", "rope"),
        ("CA", "NO"),
        34.0,
        80.0,
    ),
    (
        ("cookware", "appliances"),
        ("skillet", "knife", "blender", "kettle", "spatula", "oven", "pan", "recipe", "espresso", "bakeware"),
        ("IT", "FR"),
        45.0,
        45.0,
    ),
    (
        ("gaming", "electronics"),
        (
            "console",
            "controller",
            "headset",
            "keyboard",
            "mouse",
            "monitor",
            "arcade",
            "rgb",
            "joystick",
            "stream",
        ),
        ("KR", "JP"),
        23.0,
        120.0,
    ),
    (
        ("books", "stationery"),
        ("novel", "notebook", "pen", "poetry", "journal", "mystery", "history", "atlas", "ink", "bookmark"),
        ("GB", "IE"),
        52.0,
        18.0,
    ),
    (
        ("fitness", "sportswear"),
        (
            "yoga",
            "dumbbell",
            "running",
            "mat",
            "protein",
            "treadmill",
            "shorts",
            "sneakers",
            "kettlebell",
            "band",
        ),
        ("US", "AU"),
        29.0,
        40.0,
    ),
    (
        ("music", "instruments"),
        (
            "guitar",
            "vinyl",
            "piano",
            "drum",
            "amplifier",
            "strings",
            "ukulele",
            "metronome",
            "microphone",
            "synth",
        ),
        ("DE", "BR"),
        31.0,
        150.0,
    ),
    (
        ("garden", "tools"),
        ("seeds", "shovel", "hose", "planter", "pruner", "compost", "trowel", "gloves", "lawn", "greenhouse"),
        ("NL", "NZ"),
        58.0,
        30.0,
    ),
    (
        ("fashion", "accessories"),
        ("scarf", "handbag", "jacket", "sunglasses", "watch", "denim", "silk", "belt", "earrings", "wallet"),
        ("ES", "MX"),
        27.0,
        60.0,
    ),
)
# Each group splits into two topics, one per category; topic t is half t % 2 of group t // 2.
NUM_TOPICS = 2 * len(_TOPICS)
_ADJECTIVES = (
    "classic",
    "pro",
    "deluxe",
    "compact",
    "premium",
    "essential",
    "ultra",
    "mini",
    "smart",
    "eco",
    "vintage",
    "lite",
)
_COUNTRIES = tuple(sorted({c for topic in _TOPICS for c in topic[2]}))
_CATEGORIES = tuple(c for topic in _TOPICS for c in topic[0])
_POPULARITY_NOISE = 0.05  # share of purchases drawn from global popularity, ignoring the user's topics
_ZIPF_EXPONENT = 0.7


@dataclasses.dataclass(frozen=True)
class SampleFiles:
    """The files `generate_sample` wrote, and the sample's sizes."""

    output_dir: str
    train_jsonl: str
    train_tfrecord: str
    candidates_jsonl: str
    schema: str
    num_pairs: int
    num_users: int
    num_items: int

    def paths(self) -> tuple[str, str, str, str]:
        return (self.train_jsonl, self.train_tfrecord, self.candidates_jsonl, self.schema)


def sample_schema(num_users: int = 500, num_items: int = 400) -> dict[str, Any]:
    """The sample's input schema as a dict; Id buckets are at least 2x the number of ids (min 1000)."""
    return {
        "query": {
            "user_id": {"feature_type": "Id", "config": {"num_buckets": max(1000, 2 * num_users)}},
            "age": {"feature_type": "Numeric"},
            "country": {"feature_type": "Categorical", "config": {"vocab": list(_COUNTRIES)}},
            "interests": {"feature_type": "Text"},
            "taste": {"feature_type": "Vector", "config": {"length": VECTOR_LENGTH}},
        },
        "candidate": {
            "item_id": {"feature_type": "Id", "config": {"num_buckets": max(1000, 2 * num_items)}},
            "category": {"feature_type": "Categorical", "config": {"vocab": list(_CATEGORIES)}},
            "price": {"feature_type": "Numeric"},
            "title": {"feature_type": "Text"},
            "item_vector": {"feature_type": "Vector", "config": {"length": VECTOR_LENGTH}},
        },
    }


def _check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"The `{name}` parameter must be an int in [{low}, inf). Got {value!r} instead.")


def _vector(rng: np.random.Generator, center: np.ndarray, noise: float) -> list[float]:
    return [round(float(x), 4) for x in center + rng.normal(0.0, noise, VECTOR_LENGTH)]


def _topic_words(topic: int) -> tuple[str, ...]:
    words = _TOPICS[topic // 2][1]
    return words[:5] if topic % 2 == 0 else words[5:]


def _make_items(rng: np.random.Generator, num_items: int, centroids: np.ndarray):
    """Items (documents), their topic, and their within-topic popularity weight."""
    topics = np.arange(num_items) % NUM_TOPICS  # balanced topics, then shuffled
    rng.shuffle(topics)
    weights = np.zeros(num_items)
    for t in range(NUM_TOPICS):
        members = np.flatnonzero(topics == t)
        ranks = rng.permutation(len(members)) + 1
        weights[members] = ranks**-_ZIPF_EXPONENT
    docs = []
    for i, t in enumerate(topics):
        categories, _, _, _, median_price = _TOPICS[t // 2]
        category = [categories[t % 2]]
        if rng.random() < 0.2:
            category = list(categories)
        if rng.random() < 0.1:  # mislabelled or cross-listed item
            category.append(_CATEGORIES[rng.integers(len(_CATEGORIES))])
        category = list(dict.fromkeys(category))
        title_words = [_ADJECTIVES[rng.integers(len(_ADJECTIVES))]]
        words = _topic_words(t)
        title_words += [str(w) for w in rng.choice(words, size=int(rng.integers(1, 3)), replace=False)]
        if rng.random() < 0.3:
            other = _topic_words(int(rng.integers(NUM_TOPICS)))
            title_words.append(other[rng.integers(len(other))])
        price = round(float(median_price * np.exp(rng.normal(0.0, 0.4))), 2)
        docs.append(
            {
                "item_id": f"item_{i:05d}",
                "category": category,
                "price": [price],
                "title": [" ".join(title_words)],
                "item_vector": _vector(rng, centroids[t], 0.35),
            }
        )
    return docs, topics, weights


def _make_users(rng: np.random.Generator, num_users: int, centroids: np.ndarray):
    """Users (query documents) and their topic mixtures [num_users, NUM_TOPICS]."""
    docs, mixtures = [], np.zeros((num_users, NUM_TOPICS))
    for u in range(num_users):
        favourite, second = rng.choice(NUM_TOPICS, size=2, replace=False)
        mixture = 0.25 * rng.dirichlet(np.full(NUM_TOPICS, 0.3))
        mixture[favourite] += 0.55
        mixture[second] += 0.20
        mixtures[u] = mixture
        _, _, countries, mean_age, _ = _TOPICS[favourite // 2]
        if rng.random() < 0.7:
            country = countries[rng.integers(2)]
        else:
            country = _COUNTRIES[rng.integers(len(_COUNTRIES))]
        age = int(np.clip(round(rng.normal(mean_age, 7.0)), 16, 85))
        interests = []
        for _ in range(int(rng.integers(2, 5))):
            topic = rng.choice(NUM_TOPICS, p=mixture)
            words = _topic_words(int(topic))
            interests.append(str(words[rng.integers(len(words))]))
        docs.append(
            {
                "user_id": f"user_{u:05d}",
                "age": [float(age)],
                "country": [country],
                "interests": list(dict.fromkeys(interests)),
                "taste": _vector(rng, mixture @ centroids, 0.3),
            }
        )
    return docs, mixtures


def _sample_pairs(rng, num_pairs, mixtures, item_topics, item_weights) -> list[tuple[int, int]]:
    activity = rng.lognormal(0.0, 0.5, len(mixtures))
    users = rng.choice(len(mixtures), size=num_pairs, p=activity / activity.sum())
    global_p = item_weights / item_weights.sum()
    by_topic = [np.flatnonzero(item_topics == t) for t in range(NUM_TOPICS)]
    topic_p = [item_weights[m] / item_weights[m].sum() for m in by_topic]
    pairs = []
    for u in users:
        if rng.random() < _POPULARITY_NOISE:
            item = rng.choice(len(global_p), p=global_p)
        else:
            t = rng.choice(NUM_TOPICS, p=mixtures[u])
            item = by_topic[t][rng.choice(len(by_topic[t]), p=topic_p[t])]
        pairs.append((int(u), int(item)))
    return pairs


def _feature(spec: dict[str, Any], value: Any) -> tf.train.Feature:
    return feature_type_of(spec).to_feature(spec, value)


def _example(schema: dict[str, Any], record: dict[str, dict[str, Any]]) -> bytes:
    features = {
        f"{side}_{name}": _feature(schema[side][name], value)
        for side in ("query", "candidate")
        for name, value in record[side].items()
    }
    # deterministic=True: the features map is serialised in key order, so the bytes are reproducible.
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)


def generate_sample(
    output_dir: str,
    num_pairs: int = 5000,
    num_users: int = 500,
    num_items: int = 400,
    seed: int = 0,
) -> SampleFiles:
    """Writes the sample dataset (train.jsonl, train.tfrecord, candidates.jsonl, schema.json).

    The same arguments always produce byte-identical files.

    Args:
      output_dir: the folder to write into (created if missing; local or any `tf.io.gfile` URI).
      num_pairs: the number of (user, item) purchase pairs.
      num_users: the number of users; some may have no purchase.
      num_items: the number of items in the candidate corpus (at least `NUM_TOPICS`).
      seed: the random seed.

    Returns:
      A `SampleFiles` with the four paths and the sizes.

    Raises:
      ValueError: when a size or the seed is not an int in its range.

    Example:
    >>> import tempfile, json
    >>> files = generate_sample(tempfile.mkdtemp(), num_pairs=10, num_users=5, num_items=16, seed=3)
    >>> sorted(json.loads(open(files.train_jsonl).readline()))
    ['candidate', 'query']
    """
    _check_int("num_pairs", num_pairs, 1)
    _check_int("num_users", num_users, 1)
    _check_int("num_items", num_items, NUM_TOPICS)
    _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    centroids = rng.normal(0.0, 1.0, (NUM_TOPICS, VECTOR_LENGTH))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    items, item_topics, item_weights = _make_items(rng, num_items, centroids)
    users, mixtures = _make_users(rng, num_users, centroids)
    pairs = _sample_pairs(rng, num_pairs, mixtures, item_topics, item_weights)
    schema = sample_schema(num_users, num_items)

    tf.io.gfile.makedirs(output_dir)
    files = SampleFiles(
        output_dir=output_dir,
        train_jsonl=os.path.join(output_dir, "train.jsonl"),
        train_tfrecord=os.path.join(output_dir, "train.tfrecord"),
        candidates_jsonl=os.path.join(output_dir, "candidates.jsonl"),
        schema=os.path.join(output_dir, "schema.json"),
        num_pairs=num_pairs,
        num_users=num_users,
        num_items=num_items,
    )
    records = [{"query": users[u], "candidate": items[i]} for u, i in pairs]
    with tf.io.gfile.GFile(files.train_jsonl, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
    with tf.io.TFRecordWriter(files.train_tfrecord) as writer:
        for record in records:
            writer.write(_example(schema, record))
    with tf.io.gfile.GFile(files.candidates_jsonl, "w") as f:
        f.write("".join(json.dumps(doc) + "\n" for doc in items))
    with tf.io.gfile.GFile(files.schema, "w") as f:
        f.write(json.dumps(schema, indent=2) + "\n")
    return files
