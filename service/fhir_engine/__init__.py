"""The FHIR engine: FHIR interactions without a web framework (see docs/fhir-engine.md)."""
