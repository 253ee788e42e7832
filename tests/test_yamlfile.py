"""YAML with positions: values as ruamel reads them, and where each one is."""

from __future__ import annotations

import io

import pytest

from worker.config.yamlfile import YamlSyntaxError, load, new_map, roundtrip_load

DOC = """\
# a comment
name: North Korean troops
rules:
  - id: nk
    query: '"North Korean" NEAR/5 Kursk'
    all: [a, "b"]
count: 3
ratio: 1.5
flag: true
nothing:
"""


def test_values_and_types():
    doc = load(DOC)
    assert doc["name"] == "North Korean troops"
    assert doc["rules"][0]["query"] == '"North Korean" NEAR/5 Kursk'
    assert doc["rules"][0]["all"] == ["a", "b"]
    assert (doc["count"], doc["ratio"], doc["flag"], doc["nothing"]) == (3, 1.5, True, None)


def test_positions_are_zero_based_line_and_column():
    doc = load(DOC)
    assert doc.lc.key("rules") == (2, 0)
    rule = doc["rules"][0]
    assert (rule.lc.line, rule.lc.col) == (3, 4)
    assert rule.lc.value("query") == (4, 11)
    assert rule.lc.style("query") == "'"
    assert doc["rules"].lc.item(0) == (3, 4)
    assert rule["all"].lc.item(1) == (5, 13)  # the opening quote


@pytest.mark.parametrize(
    "text, line",
    [
        ("a: [1, 2\n", 1),
        ("a: 1\na: 2\n", 1),
        ("a:\n  - b\n c: d\n", 2),
    ],
)
def test_syntax_errors_say_where(text, line):
    with pytest.raises(YamlSyntaxError) as err:
        load(text)
    assert err.value.line == line


def test_roundtrip_keeps_comments_and_order():
    data, dump = roundtrip_load(DOC)
    data["rules"].append(new_map(id="new"))
    out = io.StringIO()
    dump(data, out)
    text = out.getvalue()
    assert text.startswith("# a comment\nname: North Korean troops\nrules:")
    assert "- id: new" in text
