"""OCO pairs: two exits, one cancelled when the other fills, as a journaled operation (internal).

* :mod:`~orderguard.orders.oco.engine`: :class:`OcoEngine`, the pairs' placement, the saga that
  watches them, their start-up recovery;
* :mod:`~orderguard.orders.oco.rules`: the OCO reaction, a pure function of the two legs' states.

Internal, like every module under ``orderguard.orders``: callers import the public names from
``orderguard`` (pinned by ``tests/test_public_api.py``).
"""
