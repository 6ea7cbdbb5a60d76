"""The audit trail: an AuditEvent (IHE BALP style) for every `/fhir` read, search and write."""
