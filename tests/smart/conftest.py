"""The SMART tests share the registry fixtures: fake public DNS and a respx EHR."""

from tests.connections.conftest import ehr, fake_public_dns

__all__ = ["ehr", "fake_public_dns"]
