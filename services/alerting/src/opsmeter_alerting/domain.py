"""Pure alerting rules. Delivery modes and cooldowns arrive with the alerting issue; the default lives here."""

from datetime import timedelta

DEFAULT_COOLDOWN = timedelta(seconds=300)
