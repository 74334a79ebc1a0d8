"""Helpers for tests: builders of orders, positions and operations, counting brokers.

(The chaos runner's planted bugs live under ``tests/chaos/planted.py``, not in the package.)
"""
