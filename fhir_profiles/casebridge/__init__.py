"""CaseBridge's own profiles, CodeSystem and ValueSet (snapshots written by fhir_profiles.build)."""
