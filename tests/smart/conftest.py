"""SMART test fixtures: a respx EHR for registering connections, with DNS faked as public."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from fastapi import FastAPI

from service.ehr.deps import get_url_policy
from tests.connections.conftest import mock_discovery
from tests.ehr.fakes import public_dns_policy


@pytest.fixture
def registry_ehr(app: FastAPI) -> Iterator[respx.MockRouter]:
    app.dependency_overrides[get_url_policy] = public_dns_policy
    with respx.mock(assert_all_called=False) as router:
        mock_discovery(router)
        yield router
    app.dependency_overrides.pop(get_url_policy, None)
