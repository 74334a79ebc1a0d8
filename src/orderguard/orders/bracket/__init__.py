"""Bracket orders: an entry with its protective exits, as a saga whose pivot is the entry fill
(internal).

* :mod:`~orderguard.orders.bracket.engine`: :class:`BracketEngine`, validation, mode choice, entry
  placement and the routing of events to the sagas;
* :mod:`~orderguard.orders.bracket.saga`: one bracket as a saga, its driver;
* :mod:`~orderguard.orders.bracket.facts`: the saga's state read against broker truth (no I/O);
* :mod:`~orderguard.orders.bracket.plan`: the saga's decisions, pure functions of the facts;
* :mod:`~orderguard.orders.bracket.legs`: the exit legs at the broker (place, resize, cancel);
* :mod:`~orderguard.orders.bracket.leg_phases`: an exit leg's phases and moves, as a table;
* :mod:`~orderguard.orders.bracket.state`: the saga's in-memory records of its orders;
* :mod:`~orderguard.orders.bracket.discovery`: what broker reads reveal, into records and journal;
* :mod:`~orderguard.orders.bracket.tasks`: the saga's background work, one task per target;
* :mod:`~orderguard.orders.bracket.report`: the caller's response and the journaled result;
* :mod:`~orderguard.orders.bracket.values`: settings, the outcome vocabulary, the result;
* :mod:`~orderguard.orders.bracket.hooks`: where a bracket consults the user's recovery hooks.

Internal, like every module under ``orderguard.orders``: callers import the public names from
``orderguard`` (pinned by ``tests/test_public_api.py``).
"""
