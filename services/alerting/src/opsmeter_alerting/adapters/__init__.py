"""Ports of the alerting service (channels arrive with the alerting issue)."""
