"""CaseBridge: the FHIR integration service for case management."""
