"""Mask secrets: the one redaction, for logs, errors, stats and what is written to Redis.

Every consumer masks through ``redact_text`` (or ``redact_data`` for JSON-like
values) with the same secrets: the values interpolated from ``${ENV}`` into
destination URLs plus ``url_secrets`` of each URL (credentials written literally
in the YAML), which ``Destination.secrets`` holds. ``redact_url`` shows a URL.

Apprise URLs carry their credentials anywhere: in the user info
(``mailtos://user:pass@host``), in the "host" (``slack://TokenA/…``,
``tgram://123456:ABCDEF/…``), in path segments
(``https://hooks.slack.com/services/T000/B000/XXXX``) and in query values.
``redact_url`` is deliberately conservative and keeps only what is evidently
not a secret:

- the scheme;
- the host and port, when the host is a real host name (dotted DNS name with
  an alphabetic top-level label, IPv4, bracketed IPv6, ``localhost``).
  Otherwise the whole rest is a token and becomes ``scheme://****``;
- the user name if it is a plain word; a password always becomes ``****``;
- leading path segments that are plain lower-case words of at most 8
  characters (``services``, ``api``); from the first other segment on, the
  path collapses to one ``/****``;
- query keys, and values only of ``ALLOWED_QUERY_KEYS``. ``to``/``cc``/``bcc``
  are kept: they name recipients (needed to read a log), not credentials.
  Every other value, and every fragment, becomes ``****``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "ALLOWED_QUERY_KEYS",
    "MASK",
    "redact_data",
    "redact_forms",
    "redact_text",
    "redact_url",
    "secret_forms",
    "url_secrets",
]

MASK = "****"

#: Query keys whose values are apprise options, never secrets.
ALLOWED_QUERY_KEYS = frozenset(
    {"format", "overflow", "retry", "to", "cc", "bcc", "mode", "timeout", "verify", "rto", "cto"}
)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}\.)+[a-z]{{2,24}}\.?|\d{{1,3}}(?:\.\d{{1,3}}){{3}}|localhost")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_WORD = re.compile(r"[a-z][a-z_-]{0,7}")
_USER = re.compile(r"[a-z][a-z._-]{0,31}")
_KEY = re.compile(r"[A-Za-z][A-Za-z_-]{0,23}")  # option names have no digits; tokens do


def _host(hostport: str) -> str | None:
    """Return ``hostport`` if it is evidently a host (and port), else ``None``."""
    host, _, port = hostport.rpartition(":") if not hostport.endswith("]") else (hostport, "", "")
    if not host:
        host, port = hostport, ""
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    if _HOST.fullmatch(host.lower()) or _IPV6.fullmatch(host):
        return hostport.lower()
    return None


def redact_url(url: str) -> str:
    """Return ``url`` with everything that could be a secret replaced by ``****``."""
    m = _SCHEME.fullmatch(url.strip())
    if m is None:
        return MASK
    scheme, rest = m.group(1).lower(), m.group(2)
    rest, hash_, _ = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    host = _host(hostport)
    if host is None:
        return f"{scheme}://{MASK}"
    out = f"{scheme}://"
    if at:
        user, colon, _ = userinfo.partition(":")
        out += user if _USER.fullmatch(user) else MASK
        out += f":{MASK}@" if colon else "@"
    out += host
    if slash:
        kept = []
        for segment in path.split("/"):
            if not _WORD.fullmatch(segment):
                if segment:
                    kept.append(MASK)
                break
            kept.append(segment)
        out += "/" + "/".join(kept)
    if question:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            if not (_KEY.fullmatch(key) if eq else _WORD.fullmatch(key)):
                pairs.append(MASK)  # a bare item may itself be a token
            elif eq:
                pairs.append(f"{key}={value if key.lower() in ALLOWED_QUERY_KEYS else MASK}")
            else:
                pairs.append(key)
        out += "?" + "&".join(pairs)
    if hash_:
        out += "#" + MASK
    return out


def url_secrets(url: str) -> list[str]:
    """Return the pieces of ``url`` that may be credentials: those ``redact_url`` hides.

    Pieces shorter than 6 characters are left out (a port, ``api``): masking them
    everywhere would garble logs while protecting nothing.
    """
    m = _SCHEME.fullmatch(url.strip())
    rest = m.group(2) if m else url
    pieces = re.split(r"[/:@?&=#]+", rest)
    return [
        p
        for p in pieces
        if len(p) >= 6
        and not _WORD.fullmatch(p)
        and not _HOST.fullmatch(p.lower())
        and p.lower() not in ALLOWED_QUERY_KEYS
    ]


def redact_data(value: Any, secrets: Iterable[str]) -> Any:
    """Return a JSON-like ``value`` with every string in it passed through ``redact_text``."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v, secrets) for v in value]
    return value


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Return every form of ``secrets`` that text may carry, longest first, for ``redact_text``.

    Secrets shorter than 4 characters are left out: masking every "abc" would garble the
    text while protecting nothing. Each secret is also taken percent-encoded (in a path,
    in a query string with "+" for a space), since secrets usually reach text inside URLs.
    Longest first, so a secret that contains another is masked whole.
    """
    forms = set()
    for secret in secrets:
        if secret and len(secret) >= 4:
            forms |= {secret, quote(secret, safe=""), quote(secret, safe="/:@"), quote_plus(secret)}
    return sorted(forms, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret, in every form ``secret_forms`` lists, as ``****``."""
    return redact_forms(text, secret_forms(secrets))


def redact_forms(text: str, forms: Sequence[str]) -> str:
    """Return ``text`` with each of ``forms`` (``secret_forms``' list) as ``****``.

    For a caller that masks many texts with the same secrets, such as the log filter.
    """
    for form in forms:
        text = text.replace(form, MASK)
    return text
