"""Login tokens never reach the server's log.

jupyter_server scrubs ``?token=`` from the access log line, but not from the other lines it
and tornado write about a request: a 4xx answer is logged by tornado as
``404 GET /api/contents/x?token=... (ip): message`` with the URI as received, and
tracebacks, warnings and the start banner carry URLs too.

:data:`SCRUBBER` is one ``logging.Filter``; :func:`install_scrubber` (called first thing when
the extension links, before the other extensions link and dump their configuration at debug
level) runs it on every record the process makes (a log record factory: loggers whose
handlers do not exist yet are covered) and puts it on every log handler there is (the
ServerApp's, the root logger's, ``logging.lastResort``). It rewrites the record's text,
traceback and stack:

- the value of every query parameter whose name contains ``token``, ``auth``, ``key``,
  ``code``, ``state``, ``xsrf`` or ``password`` (jupyter_server's access-log rule,
  everywhere in the line, and for the tokens someone got wrong too);
- ``Authorization:`` and ``Cookie:`` header values;
- ``'...token': '...'`` items of configuration dumps;
- every token the configuration and the identity providers of the process know (the
  server's token, ``$JUPYTER_TOKEN``, ``ClassroomIdentityProvider.user_tokens``), wherever
  it appears.

The server's start banner shows its URL scrubbed as well: ``jupyter server list`` prints it
with the token.
"""

from __future__ import annotations

import logging
import os
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
#: a "token" key in a dict or JSON text (configuration dumps): 'token': 'VALUE'
_TOKEN_ITEM = re.compile(r"([\"']\w*token[\"']\s*:\s*[\"'])[^\"']+", re.IGNORECASE)
#: tokens shorter than this are not searched for verbatim (they would match ordinary words)
_MIN_LITERAL = 6


class TokenScrubber(logging.Filter):
    """Rewrites log records so that no login token remains in them."""

    def __init__(self) -> None:
        super().__init__()
        #: identity providers and server apps whose tokens are removed verbatim (weakly
        #: held: a test process makes many servers)
        self._holders: weakref.WeakSet[Any] = weakref.WeakSet()
        self._cache: list[str] | None = None

    def watch(self, holder: Any) -> None:
        """Also remove, verbatim, the tokens an identity provider knows (``token``,
        ``user_tokens``) or a server app's configuration names (see :func:`config_tokens`)."""
        self._holders.add(holder)
        self._cache = None

    def known_tokens(self) -> list[str]:
        if self._cache is not None:
            return self._cache
        found: set[str] = {os.environ.get("JUPYTER_TOKEN", "")}
        for holder in list(self._holders):
            try:
                config = holder.config
                found.update(config_tokens(config))
                # (only a token that was set: reading ServerApp.token warns it is deprecated)
                if "token" in getattr(holder, "_trait_values", {}):
                    token = getattr(holder, "token", None)
                    if isinstance(token, str):
                        found.add(token)
                user_tokens = getattr(holder, "user_tokens", None) or {}
                found.update(t for t in user_tokens if isinstance(t, str))
            except Exception:  # reading a holder must never stop a log line
                continue
        # longest first, so that a token containing another is removed whole
        self._cache = sorted((t for t in found if len(t) >= _MIN_LITERAL), key=len, reverse=True)
        return self._cache

    def scrub(self, text: str, tokens: Iterable[str] | None = None) -> str:
        text = _QUERY_VALUE.sub(lambda m: m.group(1) + SECRET, text)
        text = _HEADER_VALUE.sub(lambda m: m.group(1) + SECRET, text)
        text = _TOKEN_ITEM.sub(lambda m: m.group(1) + SECRET, text)
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


def config_tokens(config: Any) -> list[str]:
    """Tokens a traitlets config names: every ``*token*`` string value and the keys of every
    ``*tokens*`` dict (``ClassroomIdentityProvider.user_tokens``)."""
    found = []
    for section in config.values():
        if not hasattr(section, "items"):
            continue
        for key, value in section.items():
            if "token" not in str(key).lower():
                continue
            if isinstance(value, str):
                found.append(value)
            elif hasattr(value, "keys"):
                found.extend(k for k in value.keys() if isinstance(k, str))
    return found


def install_scrubber(*holders: Any, loggers: Iterable[logging.Logger] = ()) -> int:
    """Scrub every log record of the process; returns how many handlers it was added to.

    ``holders``: identity providers and server apps whose tokens to remove verbatim (a
    server app before its identity provider exists: its configuration is read). ``loggers``
    (the ServerApp's) get the filter themselves as well.
    """
    for holder in holders:
        SCRUBBER.watch(holder)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "collab_kernels_scrubber", False):
        # Records of loggers whose handlers do not exist yet (each extension app makes its
        # own when it links) are scrubbed as they are made.
        def scrubbing_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            SCRUBBER.filter(record)
            return record

        scrubbing_factory.collab_kernels_scrubber = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(scrubbing_factory)
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
