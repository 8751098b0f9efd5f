"""Real implementations of the ports in ``opsmeter_ingest.ports``: Redis admission, Kafka + spool, the price catalog."""
