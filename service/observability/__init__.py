"""Operations: request ids, structured JSON logs, Prometheus metrics and OpenTelemetry traces
(docs/observability.md)."""
