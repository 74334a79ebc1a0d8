"""orderguard: futures orders on the ProjectX Gateway with transactional error recovery.

Bracket orders, OCO pairs, position closes, bulk cancels and modifications either complete or are
brought back to a safe state. The curated public API is below; everything else is internal.
"""

from orderguard.broker.base import (
    Broker,
    Confirmed,
    Outcome,
    Rejected,
    Unknown,
    UnknownOrigin,
)
from orderguard.broker.faults import FaultPlan, FaultyBroker
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
    ConfigurationError,
    ExposureRefusedError,
    InvalidPriceError,
    InvalidSideError,
    InvalidSizeError,
    JournalCorruptError,
    JournalError,
    OrderGuardError,
    OrderNotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    UnknownContractError,
    ValidationError,
)
from orderguard.journal import Journal, MemoryJournal, SqliteJournal
from orderguard.models import (
    Account,
    Contract,
    Order,
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
)
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation
from orderguard.recovery.operations import OperationState, OperationType

__version__ = "0.1.0"

__all__ = [
    "Account",
    "Broker",
    "CancelAllResult",
    "CancelResult",
    "Clock",
    "ConfigurationError",
    "Confirmed",
    "Contract",
    "ExposureRefusedError",
    "FaultPlan",
    "FaultyBroker",
    "InvalidPriceError",
    "InvalidSideError",
    "InvalidSizeError",
    "Journal",
    "JournalCorruptError",
    "JournalError",
    "LatencyModel",
    "MarketDriver",
    "MemoryJournal",
    "ModifyResult",
    "OperationRecoveryManager",
    "OperationState",
    "OperationType",
    "Order",
    "OrderGuardError",
    "OrderManager",
    "OrderManagerConfig",
    "OrderNotFoundError",
    "OrderPlaceResponse",
    "OrderRejectedError",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "Outcome",
    "OutcomeUnknownError",
    "Position",
    "PositionType",
    "RandomWalkPrices",
    "RecoveryOperation",
    "Rejected",
    "SimBroker",
    "SimExchange",
    "SqliteJournal",
    "SystemClock",
    "Trade",
    "Unknown",
    "UnknownContractError",
    "UnknownOrigin",
    "ValidationError",
    "VirtualClock",
    "__version__",
]
