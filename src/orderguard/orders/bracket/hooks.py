"""The recovery hooks a bracket saga consults (see :mod:`orderguard.ops.hooks`).

* ``before_flatten``: the bracket's protection was not confirmed by its flatten point. Hooks may
  postpone the flatten — never past the protection deadline — and may ask for a tighter stop for
  the stop's next attempt; the saga keeps trying to protect while it waits. Asked once per
  unprotected episode.
* ``before_rollback``: the bracket goes to the protection executor for another reason (a leg
  refused, both exits filled, the caller closing it). Hooks are told, in a task beside the
  rollback (which never waits for them): nothing can be postponed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from orderguard.models import OrderSide
from orderguard.ops.hooks import DelayFlatten, HookContext, HookPoint, TightenStop
from orderguard.orders.bracket.plan import BracketFacts
from orderguard.orders.bracket.state import BracketRequest
from orderguard.orders.bracket.values import BracketSettings
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.exposure import ExposureMeter


@dataclass(frozen=True, slots=True)
class FlattenHold:
    """A flatten the hooks postponed: for the episode that began at ``episode``, the flatten
    point moves ``extra`` seconds later."""

    episode: float | None = None
    extra: float = 0.0

    def for_episode(self, open_since: float | None) -> float:
        return self.extra if open_since is not None and open_since == self.episode else 0.0


class BracketSaga(Protocol):
    """What the hooks read and set on a bracket saga (orders/bracket_saga.py)."""

    ctx: EngineContext
    req: BracketRequest
    settings: BracketSettings
    meter: ExposureMeter
    flatten_hold: FlattenHold

    @property
    def operation_id(self) -> str: ...

    @property
    def last_facts(self) -> BracketFacts | None: ...

    def tighten_stop(self, price: Decimal) -> None: ...


def _signed(saga: BracketSaga, owned: int) -> int:
    return owned if saga.req.side is OrderSide.BUY else -owned


async def flatten_postponed(saga: BracketSaga, facts: BracketFacts, reason: str) -> bool:
    """Ask the ``before_flatten`` hooks; True when they postponed this flatten."""
    hooks = saga.ctx.hooks
    episode = saga.meter.open_since
    if (
        not facts.deadline_passed
        or episode is None
        or saga.flatten_hold.episode == episode  # asked once per episode
        or not hooks.registered(HookPoint.BEFORE_FLATTEN)
    ):
        return False
    clock = saga.ctx.clock
    deadline_at = episode + saga.settings.protection_deadline
    ctx = HookContext(
        point=HookPoint.BEFORE_FLATTEN,
        operation_id=saga.operation_id,
        account_id=saga.req.account_id,
        contract_id=saga.req.contract_id,
        reason=reason,
        owned=_signed(saga, facts.owned),
        covered=facts.stop.covering,
        unprotected_seconds=saga.meter.open_for(clock.monotonic()),
        flatten_budget=max(0.0, deadline_at - clock.monotonic()),
        stop_price=saga.req.stop_price,
    )
    decision = await hooks.consult(ctx)
    saga.flatten_hold = FlattenHold(episode, 0.0)
    if isinstance(decision, TightenStop):
        saga.tighten_stop(decision.price)
    if not isinstance(decision, DelayFlatten | TightenStop):
        return False
    # The hook's own run took time: the hold ends at the deadline at the latest.
    hold_until = min(deadline_at, clock.monotonic() + (decision.seconds or 0.0))
    extra = hold_until - (episode + saga.settings.flatten_after)
    if extra <= 0:
        return False
    saga.flatten_hold = FlattenHold(episode, extra)
    return True


async def before_rollback(saga: BracketSaga, reason: str) -> None:
    hooks = saga.ctx.hooks
    if not hooks.registered(HookPoint.BEFORE_ROLLBACK):
        return
    facts = saga.last_facts
    await hooks.consult(
        HookContext(
            point=HookPoint.BEFORE_ROLLBACK,
            operation_id=saga.operation_id,
            account_id=saga.req.account_id,
            contract_id=saga.req.contract_id,
            reason=reason,
            owned=0 if facts is None else _signed(saga, facts.owned),
            covered=0 if facts is None else facts.stop.covering,
            stop_price=saga.req.stop_price,
        )
    )


__all__ = ["FlattenHold", "before_rollback", "flatten_postponed"]
