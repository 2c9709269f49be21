"""Fixtures for the execution tests."""
