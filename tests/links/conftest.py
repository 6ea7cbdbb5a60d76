"""The connection tests' fake EHR (respx) and public-DNS policy, for registering connections."""

from tests.connections.conftest import ehr, fake_public_dns

__all__ = ["ehr", "fake_public_dns"]
