"""US Core 6.1.0 conformance resources, copied verbatim from the published package."""
