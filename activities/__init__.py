"""Temporal activities: the only code that touches the store, templates and providers."""
