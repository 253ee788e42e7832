"""Stories: terms, similarity, grouping on a labelled set, and the Redis store under races."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from configs import write_config
from shared import shared_dir

from worker.config import StorySettings, load_config
from worker.core import keys
from worker.core.store import connect
from worker.errors import ConfigError
from worker.model import Item
from worker.stories import MemoryStories, story_id
from worker.stories.features import features, idf_from, terms_of
from worker.stories.grouping import Assignment, OpenStory, joins
from worker.stories.store import assign

CLUSTERS = Path(__file__).parent / "fixtures" / "stories" / "clusters.jsonl"


def item(n: int, title: str, feed: str = "f", summary: str = "", link: str = "") -> Item:
    link = link or f"https://news{n}.example.com/{n}"
    return Item(id=f"i{n}", feed=feed, title=title, summary=summary, link=link, story=f"s{n}")


def test_terms_reuse_rule_normalisation_and_drop_stop_words():
    assert terms_of("Zelenský says the North-Korean troops are in Kursk") == [
        "zelensky", "north", "korean", "troops", "kursk",
    ]  # fmt: skip
    assert terms_of("Die Regierung und der Kanzler") == ["regierung", "kanzler"]


PAIRS = [
    # (a, b, same story?)
    ("GM recalls 1.6 million cars over faulty brake sensors", "GM shares fall on earnings miss", False),
    ("Magnitude 6.8 earthquake strikes off northeastern Japan",
     "Magnitude 5.9 earthquake shakes eastern Turkey", False),
    ("Russia-Ukraine war: List of key events, day 1,455",
     "Russia-Ukraine war: List of key events, day 1,456", False),
    ("Peru's Congress removes interim President Jeri amid corruption allegations",
     "Peru ousts interim president Jeri over corruption probe", True),
    ("Tarique Rahman sworn in as prime minister of Bangladesh",
     "Bangladesh's new prime minister Tarique Rahman is sworn in", True),
]  # fmt: skip


@pytest.mark.parametrize(("a", "b", "same"), PAIRS)
def test_similarity_separates_stories_that_share_a_name(a, b, same):
    # Frequencies as a warm worker has them: common news words seen often, names rarely.
    df = {"magnitude": 40, "earthquake": 40, "strikes": 60, "war": 200, "russia": 300,
          "ukraine": 300, "events": 100, "list": 100, "key": 100, "day": 300, "1": 500}  # fmt: skip
    idf = idf_from(df, 2000)
    story = OpenStory("s1", 0.0, features(item(1, a), idf), a)
    sim = story.compare(features(item(2, b), idf), b)
    assert joins(sim) is same, sim


def test_wire_copy_with_rewritten_headline_is_one_story():
    lead = (
        "A powerful winter storm swept across Texas on Thursday, knocking out power to more "
        "than 300,000 homes and businesses and forcing schools to close."
    )
    m = MemoryStories()
    first = m.assign(item(1, "Winter storm knocks out power to 300,000 in Texas", "ap", lead), 0)
    copy = m.assign(item(2, "Hundreds of thousands in the dark", "cbs", lead), 1)
    assert first.opened and copy.story == first.story and copy.similarity.view == "lead"
    assert "texas" in copy.shared_terms


def _stream(rows: list[dict]) -> tuple[Counter, int]:
    """Run the labelled items through the grouping; return stories opened per label, and wrong merges."""
    m = MemoryStories()
    opened: Counter = Counter()
    label_of: dict[str, str] = {}
    wrong = 0
    for n, r in enumerate(rows):
        a = m.assign(item(n, r["title"], r["feed"], r.get("summary", "")), float(n))
        if a.opened:
            opened[r["story"]] += 1
            label_of[a.story] = r["story"]
        elif label_of[a.story] != r["story"]:
            wrong += 1
    return opened, wrong


def test_labelled_clusters_alert_about_once_per_story_and_never_swallow_one():
    rows = [json.loads(line) for line in CLUSTERS.read_text().splitlines()]
    labels = {r["story"] for r in rows}
    opened, wrong = _stream(rows)
    per_story = sum(opened[label] for label in labels) / len(labels)
    never = sum(1 for label in labels if opened[label] == 0) / len(labels)
    assert per_story <= 1.45 and never <= 0.01 and wrong == 0, (per_story, never, wrong)
    # Without grouping (one alert per link) every item is a message.
    assert len(rows) / len(labels) > 2.0


def test_story_pairs_precision_at_the_threshold():
    rows = [
        json.loads(line)
        for line in (shared_dir("corpus", "story-pairs") / "pairs.jsonl").read_text().splitlines()
    ]
    rows = [r for r in rows if r["label"] != "ambiguous"]

    def as_item(n: int, text: str) -> Item:
        words = text.split()  # the title cannot be split off: the first 12 words stand for it
        return item(n, " ".join(words[:12]), summary=" ".join(words[12:]))

    docs = [as_item(n, r[k]) for n, r in enumerate(rows) for k in ("text1", "text2")]
    m = MemoryStories()
    for d in docs:
        m.learn(d)
    idf = idf_from(m.df, m.docs)
    tp = fp = fn = 0
    for n, r in enumerate(rows):
        first, second = docs[2 * n], docs[2 * n + 1]
        story = OpenStory("s", 0.0, features(first, idf), first.title)
        merged = joins(story.compare(features(second, idf), second.title))
        same = r["label"] == "same"
        tp, fp, fn = tp + (merged and same), fp + (merged and not same), fn + (same and not merged)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"story-pairs: precision {precision:.3f} recall {recall:.3f} ({tp} tp, {fp} fp)")
    assert precision >= 0.75 and recall >= 0.1


@pytest.mark.parametrize(("group", "expected"), [("off", "i7"), ("link", "s7"), ("similar", "s1")])
def test_story_id_per_group_setting(group, expected):
    a = Assignment("s1", False, at=100.0, opened_at=50.0)
    assert story_id(StorySettings(group=group), item(7, "x"), a) == expected


def test_story_id_after_the_watchlist_window_is_a_new_story():
    a = Assignment("s1", False, at=50.0 + 7200, opened_at=50.0)
    assert story_id(StorySettings(window=3600), item(7, "x"), a) == "s1-2"
    assert story_id(StorySettings(window=86400), item(7, "x"), a) == "s1"


# -- config -------------------------------------------------------------------


def _config(tmp_path, feeds_extra: str, watchlist_extra: str = ""):
    return write_config(
        tmp_path / "config",
        feeds=f"feeds:\n  - id: a\n    url: https://a.example.com/rss\n{feeds_extra}",
        destinations="hook:\n  url: json://127.0.0.1:9/x\n",
        watchlists={"w": f"notify: [hook]\nrules:\n  - id: r\n    all: [kursk]\n{watchlist_extra}"},
    )


def test_config_default_and_watchlist_override(tmp_path):
    root = _config(tmp_path, "stories: {group: link, window: 12h}\n", "stories: {window: 2h}\n")
    config = load_config(root)
    assert config.stories == StorySettings("link", 12 * 3600)
    assert config.watchlist("w").stories == StorySettings("link", 2 * 3600)
    assert load_config(_config(tmp_path / "b", "")).watchlist("w").stories == StorySettings()


def test_config_errors_have_positions(tmp_path):
    root = _config(tmp_path, "stories:\n  group: fuzzy\n", "stories: {window: 10s, colour: red}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(root)
    text = str(exc.value)
    assert "feeds.yaml:5:10: group: must be one of similar, link, off, not 'fuzzy'" in text
    assert "w.yaml:5:" in text and "window must be at least 1m" in text and "colour" in text


# -- Redis store ---------------------------------------------------------------

WIRE = "Militants kill 11 Pakistani soldiers and a child in attack on checkpoint in northwest"


def test_assignment_is_stable_when_a_batch_runs_again(redis_client):
    items = [item(1, WIRE, "a"), item(2, "Eleven Pakistani soldiers killed at checkpoint", "b")]
    first = assign(redis_client, items, 3600, now=1000.0)
    again = assign(redis_client, items, 3600, now=1010.0)
    assert {k: v.story for k, v in first.items()} == {k: v.story for k, v in again.items()}
    assert first["i1"].opened and not again["i1"].opened and again["i1"].at == first["i1"].at


def test_different_stories_sharing_a_company_stay_apart(redis_client):
    a = assign(
        redis_client, [item(1, "GM recalls 1.6 million cars over faulty brakes", "a")], 3600, 0
    )
    b = assign(
        redis_client, [item(2, "GM shares fall as tariffs hit quarterly earnings", "b")], 3600, 1
    )
    assert a["i1"].story != b["i2"].story and b["i2"].opened


def test_story_closes_after_its_window(redis_client):
    assign(redis_client, [item(1, WIRE, "a")], 3600, now=0.0)
    inside = assign(redis_client, [item(2, WIRE + " region", "b")], 3600, now=3000.0)
    after = assign(redis_client, [item(3, WIRE + " province", "c")], 3600, now=3700.0)
    assert inside["i2"].story == "s1" and after["i3"].opened and after["i3"].story == "s3"


def test_four_workers_racing_on_twenty_copies_make_one_story(redis_url):
    copies = [item(n, f"{WIRE} (update {n})", f"feed-{n}") for n in range(20)]
    results: dict[str, str] = {}
    barrier = threading.Barrier(4)

    def worker(share: list[Item]) -> None:
        client = connect(redis_url)  # one connection each, as separate processes have
        barrier.wait()
        for it in share:
            results.update({k: a.story for k, a in assign(client, [it], 3600, 500.0).items()})
        client.close()

    threads = [threading.Thread(target=worker, args=(copies[w::4],)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 20 and len(set(results.values())) == 1, Counter(results.values())


def test_open_stories_are_capped(redis_client, monkeypatch):
    monkeypatch.setattr(keys, "STORIES_MAX", 5)
    for n in range(8):
        assign(
            redis_client, [item(n, f"Unrelated story number {n} about topic{n} zone{n}")], 3600, n
        )
    assert redis_client.zcard(keys.STORIES_OPEN) == 5
    assert not redis_client.exists(keys.story_record("s0"))


def test_digest_lists_a_story_once_with_its_outlet_count():
    from worker.deliver.render import render_digest
    from worker.model import Alert

    story = Item(id="i1", feed="ap", title="Winter storm knocks out power in Texas", story="s1")
    other = Item(id="i9", feed="ap", title="Kenyan teachers call national strike", story="s9")
    alerts = [
        Alert("w1", "Weather", ("storm",), story, also_in=("cbs", "abc")),
        Alert("w2", "Texas", ("texas",), story, also_in=("cbs", "abc")),
        Alert("w1", "Weather", ("strike",), other),
    ]
    _, body = render_digest(alerts, "text", "3 alerts at once")
    assert body.count("Winter storm") == 1 and "«Weather» / storm · «Texas» / texas" in body
    assert "3 outlets, also in: cbs, abc" in body and body.count("Kenyan teachers") == 1


def test_backtest_counts_a_copy_folded_into_an_alerted_story_as_same(tmp_path, redis_client):
    """The alert went out for the first copy; the second copy, folded, is the same story."""
    from worker.service.backtest import Backtest
    from worker.service.backtest_match import Hit

    lead = (
        "A powerful winter storm swept across Texas on Thursday, knocking out power to more "
        "than 300,000 homes and businesses and forcing schools to close."
    )
    first = item(1, "Winter storm knocks out power to 300,000 in Texas", "ap", lead)
    copy = item(2, "Hundreds of thousands in the dark", "cbs", lead)
    story = assign(redis_client, [first, copy], 3600)["i1"].story
    bt = Backtest(redis_client, load_config(_config(tmp_path, "")))
    bt.then = {("w", "r", story): {"item": first.to_dict()}}
    bt.stories = {first.id: story}
    lines = list(bt.current(iter([[Hit("w", "r", first), Hit("w", "r", copy)]])))
    assert [(ln.item.id, ln.story, ln.change) for ln in lines] == [
        ("i1", story, "same"),
        ("i2", story, "same"),
    ]
