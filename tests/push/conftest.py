"""Push tests run their own dispatchers (the app's in-process one is off) and may talk to a
loopback EHR over http."""

from __future__ import annotations

import pytest

from service.settings import Settings
from tests.conftest import settings_for


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        push_dispatcher_enabled=False,
        allow_insecure_http=True,
        allow_private_networks=True,
        push_lease_seconds=2.0,
        push_retry_base_seconds=0.01,
        push_retry_max_seconds=0.05,
    )
