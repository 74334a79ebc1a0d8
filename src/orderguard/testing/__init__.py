"""Helpers for testing orderguard itself and code built on it."""

from orderguard.testing.planted_bugs import PlantedBug, planted_bugs

__all__ = ["PlantedBug", "planted_bugs"]
