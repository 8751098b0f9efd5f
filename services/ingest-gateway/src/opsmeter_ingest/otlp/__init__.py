"""OpenTelemetry ingest: OTLP/HTTP trace requests decoded, and their model-operation spans as ingest records."""
