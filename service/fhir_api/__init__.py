"""`/fhir`: the R4 REST API external apps use, served from the versioned FHIR store."""
