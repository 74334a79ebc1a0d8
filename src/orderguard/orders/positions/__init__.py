"""Position orders, and exits that follow the account's actual position (internal).

* :mod:`~orderguard.orders.positions.engine`: :class:`PositionOrders`, ``add_stop_loss``,
  ``add_take_profit``, ``cancel_position_orders`` and the journaled placement of one exit;
* :mod:`~orderguard.orders.positions.watch`: the position watcher: exits follow their position,
  none outlives it, none over-covers it;
* :mod:`~orderguard.orders.positions.registry`: the durable set of exits the watcher manages;
* :mod:`~orderguard.orders.positions.rules`: the pure decisions (no I/O);
* :mod:`~orderguard.orders.positions.results`: what the position-order calls return;
* :mod:`~orderguard.orders.positions.holdings`: the holdings follower: a change of the position,
  whoever made it, credited to the operations holding the contract, whose exits follow.

Internal, like every module under ``orderguard.orders``: callers import the public names from
``orderguard`` (pinned by ``tests/test_public_api.py``).
"""
