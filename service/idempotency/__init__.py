"""Stored answers of writes sent with an `Idempotency-Key` (see `service.fhir_api.idempotency`)."""
