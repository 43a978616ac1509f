"""Turning templates into the words a customer reads."""
