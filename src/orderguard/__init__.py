"""orderguard: futures orders on the ProjectX Gateway with transactional error recovery.

Bracket orders, OCO pairs, position closes, bulk cancels and modifications either complete or are
brought back to a safe state. Everything a caller meets is exported here: the
:class:`OrderManager`, what its methods take and return, every error they raise, the broker port
with its outcomes and events, the adapters (the simulated exchange, the ProjectX Gateway, the
fault injector) and the journals. For your own tests see :mod:`orderguard.testing`. Everything
else is internal and may change.
"""

from orderguard.broker.base import (
    AccountCapabilities,
    AccountEvent,
    Broker,
    BrokerEvent,
    Confirmed,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    Outcome,
    PositionEvent,
    QuoteEvent,
    Rejected,
    Subscription,
    TradeEvent,
    Unknown,
    UnknownOrigin,
)
from orderguard.broker.faults import FaultKind, FaultPlan, FaultyBroker
from orderguard.broker.projectx import (
    GatewayUnavailableError,
    ProjectXBroker,
    ProjectXSettings,
    default_journal_path,
)
from orderguard.broker.sim import (
    LatencyModel,
    MarketDriver,
    RandomWalkPrices,
    SimBroker,
    SimExchange,
)
from orderguard.clock import Clock, SystemClock, VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.errors import (
    AlreadyProtectedError,
    AuthenticationError,
    BrokerError,
    CircuitOpenError,
    ConfigurationError,
    ConnectionFailedError,
    ExitNotReducingError,
    ExposureRefusedError,
    InvalidPriceError,
    InvalidSideError,
    InvalidSizeError,
    JournalCorruptError,
    JournalError,
    MalformedPayloadError,
    NoPositionError,
    OperationError,
    OrderGuardError,
    OrderNotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    ReadTimeoutError,
    RiskLimitError,
    UnknownAccountError,
    UnknownContractError,
    ValidationError,
)
from orderguard.journal import Journal, MemoryJournal, SqliteJournal
from orderguard.models import (
    Account,
    Contract,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionType,
    Trade,
)
from orderguard.orders import (
    CancelAllResult,
    CancelResult,
    ModifyResult,
    OrderManager,
    OrderPlaceResponse,
    Resolution,
)
from orderguard.orders.bracket_types import BracketOrderResponse, BracketOutcome
from orderguard.orders.oco import OcoLeg, OcoLinkResult, OcoOrderResponse
from orderguard.orders.position_results import (
    CancelPositionOrdersResult,
    PositionOrderOutcome,
    ProtectiveOrderResponse,
)
from orderguard.orders.results import CloseOutcome, ClosePositionResult
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.recovery.startup import RecoveryReport
from orderguard.resilience import Priority

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AccountCapabilities",
    "AccountEvent",
    "AlreadyProtectedError",
    "AuthenticationError",
    "BracketOrderResponse",
    "BracketOutcome",
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
    "ExitNotReducingError",
    "ExposureRefusedError",
    "FaultKind",
    "FaultPlan",
    "FaultyBroker",
    "GatewayUnavailableError",
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
    "ProjectXBroker",
    "ProjectXSettings",
    "ProtectiveOrderResponse",
    "QuoteEvent",
    "RandomWalkPrices",
    "RateLimitedError",
    "ReadTimeoutError",
    "RecoveryOperation",
    "RecoveryReport",
    "Rejected",
    "Resolution",
    "RiskLimitError",
    "SimBroker",
    "SimExchange",
    "SqliteJournal",
    "Subscription",
    "SystemClock",
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
]
