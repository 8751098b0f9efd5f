"""Ports of the billing service. The plan projection lives in ``opsmeter_runtime.projections``."""
