"""Helpers that build test inputs for tests/test_io.py at test time (no binary data is committed)."""
