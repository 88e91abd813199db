"""Helpers shared by test modules: real processes for process-level tests."""
