"""Aerial imagery: pair validation, windowed reading, coverage."""
