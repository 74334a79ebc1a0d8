"""Where the manager learns about orders, and keeps what it learned (internal).

* :mod:`~orderguard.orders.feed.order_feed`: broker events and REST reads into the tracker, then
  out to callbacks, the placement pipeline, the reconciler and the engines;
* :mod:`~orderguard.orders.feed.tracking`: order state, idempotent and never backwards;
* :mod:`~orderguard.orders.feed.reconciler`: continuous reconciliation, what events missed.

Internal, like every module under ``orderguard.orders``: callers import the public names from
``orderguard`` (pinned by ``tests/test_public_api.py``).
"""
