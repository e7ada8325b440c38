"""Alerts: identity across runs, lifecycle, store, field exchange, chips."""
