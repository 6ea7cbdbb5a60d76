"""Case -> FHIR: one module per resource type, each building a plain FHIR JSON dict."""
