"""The path of one mutation to the broker: checks, journal, send, outcome (internal).

* :mod:`~orderguard.orders.send.validation`: input checked before anything is sent (F14);
* :mod:`~orderguard.orders.send.risk`: risk limits, checked before new exposure only;
* :mod:`~orderguard.orders.send.latch`: the ambiguity latch;
* :mod:`~orderguard.orders.send.journaling`: intents journaled before sending;
* :mod:`~orderguard.orders.send.journaled_send`: the one journaled send (intent, send, outcome);
* :mod:`~orderguard.orders.send.mutation`: when a mutation may be re-sent;
* :mod:`~orderguard.orders.send.placement`: journal-first placement and the three outcomes;
* :mod:`~orderguard.orders.send.cancellation`: cancels confirmed by the order's final state;
* :mod:`~orderguard.orders.send.backoff`: the status-check schedule for an Unknown outcome.

Internal, like every module under ``orderguard.orders``: callers import the public names from
``orderguard`` (pinned by ``tests/test_public_api.py``).
"""
