"""The synthetic demo county and its survey flights (also test data)."""
