"""Errors the ProjectX adapter adds to orderguard's tree (``orderguard.errors``)."""

from __future__ import annotations

from orderguard.errors import BrokerError


class GatewayUnavailableError(BrokerError):
    """A *read* got no usable answer (HTTP 5xx, a timeout, a lost connection).

    Retryable: repeating a read changes nothing. Mutations never raise it; for them the same
    failures are an ``Unknown`` outcome.
    """

    retryable = True


__all__ = ["GatewayUnavailableError"]
