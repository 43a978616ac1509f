"""Contacts and what they asked for: validation at the edge, writes with a consent trail."""
