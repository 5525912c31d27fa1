"""Keep credentials out of log lines: ours, httpx's and httpcore's.

httpx logs every exchange at ``INFO`` with the full URL (``https://user:pass@host/?access_token=…``)
and httpcore logs response headers (``Set-Cookie``) at ``DEBUG``. The client factory installs
`RedactingFilter` on those loggers, so what they print carries no userinfo, no query values and
no header values, whatever logging configuration the application has.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

import httpx

REDACTED = "***"

# Loggers that print URLs or headers. A filter on a logger applies to the records it
# creates only (not to its children's), so each httpcore module logger is listed.
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)

_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s"'<>]+""")
_HEADER_PAIR = re.compile(r"""\((b?)(['"])([^'"]*)\2, b?(['"])(?:\\.|(?!\4).)*\4\)""")


def redact_url(url: str | httpx.URL) -> str:
    """Return ``url`` without its userinfo and fragment, its query values replaced.

    Examples:
        >>> redact_url("https://anna:pw@api.test/v1/items?access_token=t0k&limit=5")
        'https://api.test/v1/items?access_token=***&limit=***'
    """
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return REDACTED
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}={REDACTED}" if sep else name
        for name, sep, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def redact_text(text: str) -> str:
    """Return ``text`` with every URL in it redacted and header values (httpcore's) hidden."""
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    return _HEADER_PAIR.sub(
        lambda match: f"({match.group(1)}{match.group(2)}{match.group(3)}{match.group(2)}, "
        f"{match.group(1)}'{REDACTED}')",
        text,
    )


def _redact_arg(value: object) -> object:
    if isinstance(value, httpx.URL):
        return redact_url(value)
    if isinstance(value, str | bytes) or not isinstance(value, int | float):
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        cleaned = redact_text(text)
        return value if cleaned == text else cleaned
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts URLs (userinfo, query values) and header values."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and arguments; never drop the record."""
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Put the redacting filter on httpx's and httpcore's loggers (once)."""
    for name in _LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in log.filters):
            log.addFilter(_FILTER)
