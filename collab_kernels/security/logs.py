"""Login tokens never reach the server's log.

jupyter_server scrubs ``?token=`` from the access log line, but not from the other lines it
and tornado write about a request: a 4xx answer is logged by tornado as
``404 GET /api/contents/x?token=... (ip): message`` with the URI as received, and
tracebacks, warnings and the start banner carry URLs too.

:data:`SCRUBBER` is one ``logging.Filter``; :func:`install_scrubber` puts it on every log
handler of the process (the ServerApp's, the root logger's, ``logging.lastResort``, any other
logger's), so it sees each record once it is final, whichever logger made it. It rewrites the
record's text, traceback and stack:

- the value of every query parameter whose name contains ``token``, ``auth``, ``key``,
  ``code``, ``state``, ``xsrf`` or ``password`` (jupyter_server's access-log rule,
  everywhere in the line, and for the tokens someone got wrong too);
- ``Authorization:`` and ``Cookie:`` header values;
- every token the identity providers of the process know (the server's token and
  ``ClassroomIdentityProvider.user_tokens``), wherever it appears.

The server's start banner shows its URL scrubbed as well: ``jupyter server list`` prints it
with the token.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Iterable
from typing import Any

SECRET = "[secret]"

_SECRET_KEYS = "token|auth|key|code|state|xsrf|password"
_QUERY_VALUE = re.compile(
    r"([?&;](?:[^=&\s#;\"'<>]*?(?:" + _SECRET_KEYS + r")[^=&\s#;\"'<>]*)=)[^&\s#;\"'<>]+",
    re.IGNORECASE,
)
_HEADER_VALUE = re.compile(
    r"((?:authorization|cookie|x-xsrftoken)[\"']?\s*[:=]\s*[\"']?)[^\"'\n,}]+",
    re.IGNORECASE,
)
#: tokens shorter than this are not searched for verbatim (they would match ordinary words)
_MIN_LITERAL = 6


class TokenScrubber(logging.Filter):
    """Rewrites log records so that no login token remains in them."""

    def __init__(self) -> None:
        super().__init__()
        self._providers: weakref.WeakSet[Any] = weakref.WeakSet()

    def watch(self, identity_provider: Any) -> None:
        """Also remove the tokens this identity provider knows, verbatim."""
        self._providers.add(identity_provider)

    def known_tokens(self) -> list[str]:
        found: set[str] = set()
        for provider in list(self._providers):
            token = getattr(provider, "token", None)
            if isinstance(token, str):
                found.add(token)
            found.update(
                t for t in getattr(provider, "user_tokens", {}) or {} if isinstance(t, str)
            )
        # longest first, so that a token containing another is removed whole
        return sorted((t for t in found if len(t) >= _MIN_LITERAL), key=len, reverse=True)

    def scrub(self, text: str, tokens: Iterable[str] | None = None) -> str:
        text = _QUERY_VALUE.sub(lambda m: m.group(1) + SECRET, text)
        text = _HEADER_VALUE.sub(lambda m: m.group(1) + SECRET, text)
        for token in self.known_tokens() if tokens is None else tokens:
            if token in text:
                text = text.replace(token, SECRET)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        tokens = self.known_tokens()
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's error path
            return True
        clean = self.scrub(message, tokens)
        if clean != message:
            record.msg = clean
            record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text, tokens)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info, tokens)
        return True


SCRUBBER = TokenScrubber()


def _all_handlers() -> Iterable[logging.Handler]:
    loggers: list[Any] = [logging.getLogger()]
    loggers.extend(
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    )
    for logger in loggers:
        yield from list(logger.handlers)
    if logging.lastResort is not None:
        yield logging.lastResort


def install_scrubber(identity_provider: Any, *loggers: logging.Logger) -> int:
    """Scrub every log handler of the process; returns how many handlers it was added to.

    ``loggers`` (the ServerApp's) get the filter themselves as well, so records they make
    are scrubbed even for handlers added after this call.
    """
    SCRUBBER.watch(identity_provider)
    added = 0
    for handler in _all_handlers():
        if SCRUBBER not in handler.filters:
            handler.addFilter(SCRUBBER)
            added += 1
    for logger in loggers:
        if SCRUBBER not in logger.filters:
            logger.addFilter(SCRUBBER)
    return added


__all__ = ["SCRUBBER", "TokenScrubber", "install_scrubber"]
