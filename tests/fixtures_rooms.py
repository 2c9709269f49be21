"""Fixtures for the rooms tests."""
