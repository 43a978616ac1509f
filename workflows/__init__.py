"""Temporal workflow code only: deterministic, no I/O, no database or provider imports."""
