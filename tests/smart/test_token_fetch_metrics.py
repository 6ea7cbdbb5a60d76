"""EHR token fetches are counted by grant and outcome in the metrics."""

from __future__ import annotations

import pytest
import respx
from prometheus_client import REGISTRY

from service.ehr.errors import EhrAuthorizationError
from service.smart.backend_services import BackendServicesTokens
from tests.ehr.fakes import public_dns_policy
from tests.smart.test_backend_services import TOKEN_URL, make_grant


def fetches(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "casebridge_ehr_token_fetches_total",
        {"grant": "client_credentials", "outcome": outcome},
    )
    return value or 0.0


async def test_token_fetches_are_counted_by_outcome() -> None:
    tokens = BackendServicesTokens(policy=public_dns_policy())
    grant, _ = make_grant()
    ok_before, refused_before = fetches("ok"), fetches("EhrAuthorizationError")
    with respx.mock(assert_all_called=True) as router:
        router.post(TOKEN_URL).respond(
            json={"access_token": "tok", "token_type": "bearer", "expires_in": 300}
        )
        assert await tokens.access_token(grant) == "tok"
        assert await tokens.access_token(grant) == "tok"  # cached: not fetched again
    with respx.mock(assert_all_called=True) as router:
        router.post(TOKEN_URL).respond(401, json={"error": "invalid_client"})
        with pytest.raises(EhrAuthorizationError):
            await tokens.reauthenticate(grant, "tok")
    assert fetches("ok") - ok_before == 1
    assert fetches("EhrAuthorizationError") - refused_before == 1
