"""Pure matching rules of the simulated exchange: no I/O, no asyncio, no clock.

The market model
----------------
Each contract has one *last* price. The book is one tick wide and sits **on and above** the last
price: ``bid = last`` and ``ask = last + tick``. So a market buy at last 21000.00 fills at 21000.25
and a market sell at 21000.00; a round trip costs one tick, as on a real one-tick market. (A
symmetric quote would need half ticks, which no futures contract can trade at.)

Order types (ProjectX integers)
-------------------------------
* **1 Limit** — a buy is executable while ``ask <= limit`` (a sell while ``bid >= limit``). An order
  that is executable when it arrives (or when a modify makes it so) is *aggressive* and fills at the
  touch (the ask for a buy, the bid for a sell) for as long as it stays executable (by default;
  under ``ExchangeRules.limit_aggression`` ``ARRIVAL_ONLY`` the exchange makes it passive after its
  first fill); once it has rested (a matching run found it not executable) it is *passive* and
  fills at its own limit, even when the market gaps through it — price improvement goes to the
  aggressor, as on an exchange.
* **2 Market** — fills at the touch.
* **4 Stop** — a buy triggers when ``last >= stop``, a sell when ``last <= stop`` (or on the ask /
  bid: ``ExchangeRules.stop_trigger``); once triggered it is a market order and fills at the
  touch. Triggering is sticky, so a partially filled stop keeps filling later. A stop that would
  trigger on arrival is refused by the exchange by default (``ExchangeRules.marketable_stops``);
  where it is accepted it triggers at once.
* **5 TrailingStop** — ``trail_price`` is the trailing *distance* in price units. (**UNCONFIRMED**
  on the real API, which may mean an absolute price; see projectx-api.md §3.4.) A sell trailing stop
  starts at ``last - distance`` and ratchets up to ``last - distance`` whenever that is higher; a
  buy starts at ``last + distance`` and ratchets down. It never loosens. The current stop is
  reported in ``stop_price``; it triggers and fills like a Stop.
* **6 JoinBid / 7 JoinAsk** — a limit order priced at the best bid (JoinBid) or best ask (JoinAsk)
  *when it arrives*; it does not follow the quote afterwards. The side is the request's: a JoinBid
  buy rests, a JoinBid sell is executable at once.
* **3 StopLimit** is refused on placement (errorCode 2), as the gateway does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from math import gcd
from typing import NamedTuple

from orderguard.models import OrderSide, OrderType

_LIMIT_LIKE = frozenset({OrderType.LIMIT, OrderType.JOIN_BID, OrderType.JOIN_ASK})
_STOP_LIKE = frozenset({OrderType.STOP, OrderType.TRAILING_STOP})

# Average prices are exact where they can be, else rounded to the wire's 9 places.
_AVERAGE_QUANTUM = Decimal("1e-9")
_WIRE_PLACES = 9
# Prices carry at most the wire's 9 decimal places, so a price times 1e9 is an integer.
NANO = 10**9
_NANO_DECIMAL = Decimal(NANO)
# A re-average multiplies the average's denominator by the new size, so a position that never
# goes flat would grow it without bound (and slow every fill). Past this bound the average is
# rounded to 1e-18 of a point, nine places finer than the wire: exact for any realistic position
# history, and bounded for the rest.
MAX_DENOMINATOR = 10**9
# Money leaves the exchange in cents: P&L computed from a 9-place average would otherwise carry
# residue like 3.499999998 into trades and the balance.
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Quote:
    """The market of one contract at one instant."""

    last: Decimal
    bid: Decimal
    ask: Decimal


def quote_for(last: Decimal, tick: Decimal) -> Quote:
    """The one-tick market around ``last``: ``bid = last``, ``ask = last + tick``."""
    return Quote(last, last, last + tick)


def touch(side: OrderSide, quote: Quote) -> Decimal:
    """The price an aggressive order of ``side`` trades at: the ask for buys, the bid for sells."""
    return quote.ask if side is OrderSide.BUY else quote.bid


def join_price(order_type: OrderType, quote: Quote) -> Decimal:
    """The limit a JoinBid (best bid) or JoinAsk (best ask) order rests at."""
    return quote.bid if order_type is OrderType.JOIN_BID else quote.ask


def limit_executable(side: OrderSide, limit: Decimal, quote: Quote) -> bool:
    """A buy limit is executable while ``ask <= limit``; a sell while ``bid >= limit``."""
    return quote.ask <= limit if side is OrderSide.BUY else quote.bid >= limit


def stop_triggered(side: OrderSide, stop: Decimal, price: Decimal) -> bool:
    """A buy stop triggers at ``price >= stop``; a sell stop at ``price <= stop``."""
    return price >= stop if side is OrderSide.BUY else price <= stop


def stop_reference(side: OrderSide, quote: Quote, *, on_touch: bool) -> Decimal:
    """The price that elects a stop: the last, or (``on_touch``) the ask for buys, bid for sells."""
    return touch(side, quote) if on_touch else quote.last


def initial_trail_stop(side: OrderSide, last: Decimal, distance: Decimal) -> Decimal:
    """Where a trailing stop starts: ``distance`` below the market for a sell, above for a buy."""
    return last - distance if side is OrderSide.SELL else last + distance


def trail(side: OrderSide, stop: Decimal, last: Decimal, distance: Decimal) -> Decimal:
    """Ratchet a trailing stop toward the market; never loosen it."""
    if side is OrderSide.SELL:
        candidate = last - distance
        return candidate if candidate > stop else stop
    candidate = last + distance
    return candidate if candidate < stop else stop


class MatchState:
    """The fields matching reads and updates. The exchange's live order record extends it.

    ``triggered`` is sticky for stops; ``aggressive`` is True while an executable limit order keeps
    sweeping the book from the moment it arrived (see the module docstring).
    """

    __slots__ = (
        "aggressive",
        "limit_price",
        "side",
        "stop_price",
        "trail_price",
        "triggered",
        "type",
    )

    def __init__(
        self,
        side: OrderSide,
        order_type: OrderType,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
    ) -> None:
        self.side = side
        self.type = order_type
        self.limit_price = limit_price
        self.stop_price = stop_price
        self.trail_price = trail_price
        self.triggered = False
        self.aggressive = False


def execution_price(
    order: MatchState, quote: Quote, *, arriving: bool, stop_on_touch: bool = False
) -> Decimal | None:
    """The price ``order`` can fill at now, or None; updates its trigger/trail/aggression flags.

    ``arriving`` is True when the order is evaluated as it arrives (placement, a modify, a bracket
    leg being activated) rather than on a market move. ``stop_on_touch`` elects stops on the bid
    or ask instead of the last (:class:`~orderguard.broker.sim.rules.StopTrigger`).
    """
    kind = order.type
    if kind is OrderType.MARKET:
        return touch(order.side, quote)
    if kind in _LIMIT_LIKE:
        limit = order.limit_price
        if limit is None or not limit_executable(order.side, limit, quote):
            order.aggressive = False
            return None
        if arriving or order.aggressive:
            order.aggressive = True
            return touch(order.side, quote)
        return limit
    if kind in _STOP_LIKE:
        if not order.triggered:
            stop = order.stop_price
            if stop is None:
                return None
            reference = stop_reference(order.side, quote, on_touch=stop_on_touch)
            if not stop_triggered(order.side, stop, reference):
                if kind is OrderType.TRAILING_STOP and order.trail_price is not None:
                    order.stop_price = trail(order.side, stop, quote.last, order.trail_price)
                return None
            order.triggered = True
        return touch(order.side, quote)
    return None


def average(notional: Decimal, quantity: int) -> Decimal:
    """``notional / quantity``, exact when it has at most 9 decimal places, else rounded to 9.

    A quotient that fits the wire's places is computed exactly (Decimal returns exact results
    exactly), so it equals its own 9-place rounding. (Multiplying back is no test: a 28-digit
    quotient times the quantity can round to the notional again.)
    """
    avg = notional / quantity
    rounded = avg.quantize(_AVERAGE_QUANTUM)
    return avg if rounded == avg else rounded


class Exact(NamedTuple):
    """An exact rational quantity of 1e-9 units, ``num / den`` (``den > 0``).

    Average-cost accounting re-averages on every add; doing that from an already rounded average
    drifts (21000.4166666665 where the exact average rounds to 21000.416666667). Positions keep
    their average as an ``Exact`` and round only as it leaves the exchange (:meth:`rounded`); its
    denominator is bounded by :data:`MAX_DENOMINATOR` (see there). Integers, not
    :class:`~fractions.Fraction`: this is on the fill path and ints are several times cheaper.
    """

    num: int
    den: int = 1

    @classmethod
    def of(cls, value: Decimal) -> Exact:
        """``value`` (at most 9 decimal places, like every wire price) as an exact quantity."""
        return cls(int(value * _NANO_DECIMAL))

    def fraction(self) -> Fraction:
        return Fraction(self.num, self.den * NANO)

    def rounded(self) -> Decimal:
        """The wire value: exact when it has at most 9 places, else rounded half to even."""
        nanos = _divide_half_even(self.num, self.den)
        exponent = -_WIRE_PLACES
        while exponent < 0 and nanos % 10 == 0:  # 21000.75, not 21000.750000000
            nanos //= 10
            exponent += 1
        return Decimal(nanos).scaleb(exponent)


FLAT = Exact(0)


def _divide_half_even(num: int, den: int) -> int:
    """``num / den`` rounded to an integer, half to even (``den > 0``)."""
    quotient, remainder = divmod(num, den)  # floor division: 0 <= remainder < den
    twice = 2 * remainder
    if twice > den or (twice == den and quotient % 2):
        quotient += 1
    return quotient


def money_of(points: Exact, point_value: Fraction) -> Decimal:
    """Money for ``points`` price points at ``point_value`` dollars a point, to cents half to even.

    Computed exactly from the exact points, so no residue of a 9-place average reaches the balance.
    """
    cents = _divide_half_even(
        points.num * point_value.numerator * 100, points.den * NANO * point_value.denominator
    )
    return Decimal(cents).scaleb(-2)


def money(amount: Decimal) -> Decimal:
    """``amount`` rounded to cents, half to even (no drift either way over many trades)."""
    return amount.quantize(_CENT, rounding=ROUND_HALF_EVEN)


# ---------------------------------------------------------------------------------------------
# Net positions
# ---------------------------------------------------------------------------------------------


class PositionChange(NamedTuple):
    """The effect of one fill on a net position (a tuple: one is built per fill).

    ``average`` is the new exact average price. ``closed`` contracts were closed at ``points``
    total price points of profit (already signed by the position's direction; multiply by
    ``tick_value / tick_size`` for money, see :func:`money_of`). ``flipped`` is True when the fill
    went through zero and opened the other way.
    """

    size: int
    average: Exact
    closed: int
    points: Exact
    flipped: bool


def apply_fill(size: int, average: Exact, signed_qty: int, price: Decimal) -> PositionChange:
    """Apply a fill of ``signed_qty`` (buys positive) at ``price`` to a net position.

    Average-cost accounting: adding re-averages (exactly), reducing leaves the average unchanged
    and realises ``(price - average) * closed`` points in the position's direction, and going
    through zero opens the remainder at the fill price.
    """
    fill = int(price * _NANO_DECIMAL)  # exact: prices have at most 9 decimal places
    if size == 0 or (size > 0) == (signed_qty > 0):
        new_size = size + signed_qty
        if size == 0:
            return PositionChange(new_size, Exact(fill), 0, FLAT, False)
        held, added = abs(size), abs(signed_qty)
        num = average.num * held + fill * added * average.den
        den = average.den * (held + added)
        if den > MAX_DENOMINATOR:
            num, den = _divide_half_even(num * MAX_DENOMINATOR, den), MAX_DENOMINATOR
        common = gcd(num, den)
        return PositionChange(new_size, Exact(num // common, den // common), 0, FLAT, False)
    closed = min(abs(size), abs(signed_qty))
    direction = 1 if size > 0 else -1
    points = Exact((fill * average.den - average.num) * closed * direction, average.den)
    new_size = size + signed_qty
    if new_size == 0 or (new_size > 0) == (size > 0):
        return PositionChange(new_size, average, closed, points, False)
    return PositionChange(new_size, Exact(fill), closed, points, True)


__all__ = [
    "FLAT",
    "MAX_DENOMINATOR",
    "NANO",
    "Exact",
    "MatchState",
    "PositionChange",
    "Quote",
    "apply_fill",
    "average",
    "execution_price",
    "initial_trail_stop",
    "join_price",
    "limit_executable",
    "money",
    "money_of",
    "quote_for",
    "stop_reference",
    "stop_triggered",
    "touch",
    "trail",
]
