"""Stories on real multi-outlet clusters (Google News, ../shared): few messages, none swallowed.

Every outlet's headline of a story is an item with its own URL, streamed with the
rest of the corpus as background through the Redis grouping, for a watchlist that
matches everything (``tests/storyclusters.py``; ``bench/stories_real.py`` prints the
figures over five arrival orders). Issue 13's targets: at most 4 messages per story,
at most 5 % of stories never alerted. The bounds below are the measured figures of
this arrival order with a little room, so a regression in recall or precision shows.
"""

from __future__ import annotations

import pytest
from shared import shared_dir
from storyclusters import CLUSTER_FILES, background, clusters, stream

# file → (most messages per story, most wrong merges): measured 2.89 and 0 (US, 36 stories,
# 168 headlines; one alert per link sends 4.67), 3.0 and 0 (French, one story of 5).
BOUNDS = {CLUSTER_FILES[0]: (3.0, 1), CLUSTER_FILES[1]: (3.0, 0)}


@pytest.fixture(scope="module")
def corpus():
    feeds = shared_dir("corpus", "feeds")
    return feeds, background(feeds)


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_real_clusters_alert_few_times_per_story_and_never_swallow_one(redis_client, corpus, name):
    feeds, extra = corpus
    groups = clusters(feeds / name)
    sizes = {g[0].story: len(g) for g in groups}
    outcome = stream(redis_client, groups, extra, seed=1)
    got = outcome.report(sizes)
    most, wrong = BOUNDS[name]
    assert got["messages_per_story"] <= min(4.0, most), got
    assert got["never_alerted_pct"] <= 5.0 and got["never_alerted_pct"] == 0.0, got
    assert got["wrong_merges"] <= wrong, outcome.merges
    # Grouping is what brings it down: one alert per link sends every copy.
    assert got["messages_per_story"] < sum(sizes.values()) / len(sizes)
