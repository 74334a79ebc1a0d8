"""The ProjectX Gateway adapter: REST + SignalR behind the Broker port.

Start here::

    broker = ProjectXBroker.from_env()          # PROJECT_X_API_KEY, PROJECT_X_USERNAME, ...
    account = await broker.selected_account()   # PROJECT_X_ACCOUNT_NAME, else the first tradable
    journal = SqliteJournal(default_journal_path(broker.firm, account.name))
    async with broker, OrderManager(broker, account_id=account.id, journal=journal) as om:
        ...

See ``docs/projectx.md``.
"""

from .broker import ProjectXBroker
from .config import ProjectXSettings
from .errors import GatewayUnavailableError
from .paths import default_journal_path

__all__ = ["GatewayUnavailableError", "ProjectXBroker", "ProjectXSettings", "default_journal_path"]
