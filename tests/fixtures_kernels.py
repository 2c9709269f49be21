"""Fixtures for the kernels tests."""
