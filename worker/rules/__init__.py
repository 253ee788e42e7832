"""The rule engine: parse watchlist rules, normalise item text, match, highlight, explain.

Modules: ``markup`` (HTML → text), ``text`` (normalisation, tokens), ``query`` (parser → tree),
``spec`` (RuleSpec → tree, validation), ``engine`` (index + evaluation),
``explain`` (why a rule did or did not fire; builds on ``engine``, never the
reverse), ``forms`` (dictionary forms of words for ``languages:``).
"""

from worker.rules.engine import Engine
from worker.rules.explain import Explanation, explain, render_explanation
from worker.rules.markup import html_to_text
from worker.rules.spec import RuleSpec, validate

__all__ = [
    "Engine",
    "Explanation",
    "RuleSpec",
    "explain",
    "html_to_text",
    "render_explanation",
    "validate",
]
