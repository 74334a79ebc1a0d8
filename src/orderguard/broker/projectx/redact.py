"""Keeping the API key and session tokens out of logs, reprs and exception texts.

Our own code never formats a secret into a message; this module is the second line: a
:class:`SecretRegistry` knows every secret of a session (the API key and each token ever issued)
and :func:`redact` replaces them, plus anything shaped like a bearer header or an
``access_token`` query parameter, with ``***``. :class:`RedactingFilter` applies it to log records
of the loggers that see URLs or headers (ours, httpx2's, the websockets connection logger).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"

# Generic shapes, in case a secret reaches a message before it was registered.
_PATTERNS = (
    re.compile(r"(access_token=)[^&\s'\"]+", re.IGNORECASE),
    re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
    re.compile(r"(\"?(?:apiKey|token|newToken|accessToken)\"?\s*[:=]\s*\"?)[^\"\s,}]+", re.I),
)

# Loggers that may see URLs (hub URLs carry the token) or request details.
THIRD_PARTY_LOGGERS = (
    "httpx2",
    "httpcore2.connection",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.proxy",
    "websockets.client",
)


class SecretRegistry:
    """The secrets of one session. Thread-safe: log records may be formatted on any thread."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for s in secrets:
            self.add(s)

    def add(self, secret: str) -> None:
        # Very short values would mask ordinary words; real keys and JWTs are long.
        if len(secret) < 6:
            return
        with self._lock:
            if secret not in self._secrets:
                # Longest first, so a secret containing another is masked whole.
                self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def __repr__(self) -> str:
        return f"SecretRegistry({len(self._secrets)} secrets)"


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with every secret masked (never drops a record)."""

    def __init__(self, registry: SecretRegistry) -> None:
        super().__init__()
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        redacted = self.registry.redact(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = self.registry.redact(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = self.registry.redact(record.exc_text)
        return True


def install(registry: SecretRegistry, logger_names: Iterable[str]) -> list[logging.Logger]:
    """Attach one filter for ``registry`` to each named logger (once); returns the loggers."""
    loggers = []
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(
            isinstance(f, RedactingFilter) and f.registry is registry for f in logger.filters
        ):
            logger.addFilter(RedactingFilter(registry))
        loggers.append(logger)
    return loggers


def uninstall(registry: SecretRegistry, logger_names: Iterable[str]) -> None:
    for name in logger_names:
        logger = logging.getLogger(name)
        for f in list(logger.filters):
            if isinstance(f, RedactingFilter) and f.registry is registry:
                logger.removeFilter(f)


__all__ = [
    "MASK",
    "THIRD_PARTY_LOGGERS",
    "RedactingFilter",
    "SecretRegistry",
    "install",
    "uninstall",
]
