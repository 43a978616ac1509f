"""Deliveries as operators see them."""
