"""The `/fhir` client fixtures, for tests that write through `/fhir` and read the store."""

from tests.fhir_api.conftest import fhir, scopes

__all__ = ["fhir", "scopes"]
