"""The public surface: exactly these names, every type and error a caller meets among them, and
examples that use nothing else.

A name added to or dropped from ``orderguard.__all__`` fails here first: that is an API change,
and this list is where it is made on purpose.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Iterator
from pathlib import Path

import orderguard
import orderguard.testing
from orderguard import OrderGuardError, OrderManager

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = [
    "Account",
    "AccountCapabilities",
    "AccountEvent",
    "Alert",
    "AlertKind",
    "AlertMonitor",
    "AlertPolicy",
    "AlreadyProtectedError",
    "AuthenticationError",
    "BracketOrderResponse",
    "BracketOutcome",
    "BracketSettings",
    "Broker",
    "BrokerError",
    "BrokerEvent",
    "CancelAllResult",
    "CancelPositionOrdersResult",
    "CancelResult",
    "CircuitOpenError",
    "Clock",
    "CloseOutcome",
    "ClosePositionResult",
    "ConfigurationError",
    "Confirmed",
    "ConnectionEvent",
    "ConnectionFailedError",
    "ConnectionState",
    "Contract",
    "DashboardServer",
    "DelayFlatten",
    "EventFeed",
    "ExitNotReducingError",
    "ExposureRefusedError",
    "FaultKind",
    "FaultPlan",
    "FaultyBroker",
    "GatewayUnavailableError",
    "HookContext",
    "HookOutcome",
    "HookPoint",
    "HookRun",
    "InvalidPriceError",
    "InvalidSideError",
    "InvalidSizeError",
    "Journal",
    "JournalCorruptError",
    "JournalError",
    "LatencyModel",
    "MalformedPayloadError",
    "MarketDriver",
    "MemoryJournal",
    "ModifyResult",
    "NoPositionError",
    "OcoLeg",
    "OcoLinkResult",
    "OcoOrderResponse",
    "OcoSettings",
    "OperationError",
    "OperationRecoveryManager",
    "OperationState",
    "OperationType",
    "Order",
    "OrderEvent",
    "OrderGuardError",
    "OrderManager",
    "OrderManagerConfig",
    "OrderNotFoundError",
    "OrderPlaceResponse",
    "OrderRejectedError",
    "OrderRequest",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "Outcome",
    "OutcomeUnknownError",
    "Position",
    "PositionEvent",
    "PositionOrderOutcome",
    "PositionType",
    "Priority",
    "Proceed",
    "ProjectXBroker",
    "ProjectXSettings",
    "ProtectiveOrderResponse",
    "QuoteEvent",
    "RandomWalkPrices",
    "RateLimitedError",
    "ReadTimeoutError",
    "RecoveryHooks",
    "RecoveryOperation",
    "RecoveryReport",
    "Rejected",
    "Resolution",
    "ResumeContext",
    "RiskLimitError",
    "SimBroker",
    "SimExchange",
    "SqliteJournal",
    "Subscription",
    "SystemClock",
    "TightenStop",
    "Trade",
    "TradeEvent",
    "Unknown",
    "UnknownAccountError",
    "UnknownContractError",
    "UnknownOrigin",
    "ValidationError",
    "VirtualClock",
    "__version__",
    "default_journal_path",
    "serve_dashboard",
]

TESTING = [
    "CountingBroker",
    "ExchangeRules",
    "FaultKind",
    "FaultPlan",
    "FaultyBroker",
    "LatencyModel",
    "MarketDriver",
    "MemoryJournal",
    "RandomWalkPrices",
    "ScriptedFault",
    "ScriptedPrices",
    "SimBroker",
    "SimExchange",
    "StormKind",
    "VirtualClock",
    "kill",
]

# What a caller of the OrderManager calls (project-x-py's names and orderguard's additions). The
# manager's other public-looking methods are the engines' collaborators, not caller API.
CALLER_METHODS = [
    "__init__",
    "start",
    "cleanup",
    "rerun_recovery",
    "add_callback",
    "remove_callback",
    "on_order_update",
    "add_event_listener",
    "get_order_statistics",
    "place_market_order",
    "place_limit_order",
    "place_stop_order",
    "place_trailing_stop_order",
    "place_join_bid_order",
    "place_join_ask_order",
    "submit",
    "release_latch",
    "cancel_order",
    "cancel_all_orders",
    "modify_order",
    "close_position",
    "search_open_orders",
    "get_order_by_id",
    "is_order_filled",
    "get_recovery_statistics",
    "get_circuit_breaker_status",
    "get_operation_status",
    "force_rollback_operation",
    "cleanup_stale_operations",
    "add_stop_loss",
    "add_take_profit",
    "cancel_position_orders",
    "place_bracket_order",
    "wait_for_protection",
    "wait_for_completion",
    "get_bracket_status",
    "close_bracket",
    "place_oco_order",
    "link_oco_orders",
    "unlink_oco_orders",
    "get_oco_linked_order",
    "resume_operations",
    "enable_alerts",
]


def test_all_is_pinned() -> None:
    assert orderguard.__all__ == PUBLIC
    assert orderguard.testing.__all__ == TESTING


def test_every_exported_name_exists() -> None:
    for module in (orderguard, orderguard.testing):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_of_the_package_is_exported() -> None:
    """Every OrderGuardError subclass defined anywhere in the package (adapters too) is public:
    a caller who meets it can catch it by a public name."""
    for info in pkgutil.walk_packages(orderguard.__path__, "orderguard."):
        importlib.import_module(info.name)
    errors = {
        cls for cls in _subclasses(OrderGuardError) if cls.__module__.startswith("orderguard")
    }
    assert errors, "the error tree was not found"
    for cls in errors:
        assert getattr(orderguard, cls.__name__, None) is cls, cls.__name__


def _classes(hint: object) -> Iterator[type]:
    """The classes a type hint names, through unions and generics."""
    origin = typing.get_origin(hint)
    if origin is not None:
        if isinstance(origin, type):
            yield origin
        for arg in typing.get_args(hint):
            yield from _classes(arg)
    elif isinstance(hint, type):
        yield hint


def test_every_type_a_caller_meets_is_exported() -> None:
    """What the caller API takes and returns: each orderguard class in its signatures is public."""
    for name in CALLER_METHODS:
        method = inspect.getattr_static(OrderManager, name)
        hints = typing.get_type_hints(method)
        for where, hint in hints.items():
            for cls in _classes(hint):
                if cls.__module__.startswith("orderguard"):
                    assert getattr(orderguard, cls.__name__, None) is cls, (
                        f"OrderManager.{name} ({where}) uses {cls.__module__}.{cls.__name__}"
                    )


def _orderguard_imports(path: Path) -> Iterator[tuple[str, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orderguard"):
            for alias in node.names:
                yield node.module or "", alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("orderguard."), f"{path.name}: import {alias.name}"


def test_examples_import_only_public_names() -> None:
    public = {"orderguard": set(PUBLIC), "orderguard.testing": set(TESTING)}
    examples = sorted((ROOT / "examples").glob("*.py"))
    assert examples
    for path in examples:
        for module, name in _orderguard_imports(path):
            assert module in public, f"{path.name} imports the internal module {module}"
            assert name in public[module], f"{path.name} imports {module}.{name}, not public"
