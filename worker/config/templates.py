"""Message templates as config values: which fields a template may use, and its check."""

from __future__ import annotations

import string

_TEMPLATE_PARSER = string.Formatter()

#: The fields a destination's ``template`` may use, each escaped for the format.
TEMPLATE_FIELDS: tuple[str, ...] = (
    "title", "link", "feed", "published", "watchlist", "watchlist_name",
    "rule", "snippets", "also_in", "terms",
)  # fmt: skip


def check_template(template: str) -> str:
    """Return ``template`` if it is a usable message template; raise ``ValueError`` if not."""
    if not template.strip():
        raise ValueError("template is empty")
    try:
        parsed = list(_TEMPLATE_PARSER.parse(template))
    except ValueError as exc:
        raise ValueError(f"template syntax error: {exc} (write {{{{ and }}}} for braces)") from None
    known = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            raise ValueError(f"unknown template field {{{name}}}; known fields: {known}")
        # !r/!a would re-escape our escapes (\\< becomes \\\\<) and undo them.
        if conversion not in (None, "s"):
            raise ValueError(f"template field {{{name}!{conversion}}}: conversions are not allowed")
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"template field {{{name}}}: nested fields are not allowed")
    try:
        template.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
    except ValueError as exc:
        raise ValueError(f"template error: {exc}") from None
    return template
