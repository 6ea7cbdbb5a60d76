"""US Core 7.0.0 conformance resources, copied verbatim from the published package."""
