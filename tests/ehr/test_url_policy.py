from __future__ import annotations

import pytest

from service.ehr.errors import EhrUrlRefused
from service.ehr.url_policy import UrlPolicy, is_public_address, same_origin
from tests.ehr.fakes import resolve_to_public_address


def resolving_to(*addresses: str) -> UrlPolicy:
    async def fake_dns(host: str, port: int) -> list[str]:
        return list(addresses)

    return UrlPolicy(resolver=fake_dns)


async def test_https_to_a_public_address_is_allowed() -> None:
    url = await UrlPolicy(resolver=resolve_to_public_address).check("https://ehr.example.com/fhir")
    assert url.host == "ehr.example.com"


async def test_plain_http_is_refused_unless_allowed() -> None:
    with pytest.raises(EhrUrlRefused, match="only https"):
        await UrlPolicy(resolver=resolve_to_public_address).check("http://ehr.example.com/fhir")
    insecure = UrlPolicy(allow_insecure_http=True, resolver=resolve_to_public_address)
    await insecure.check("http://ehr.example.com/fhir")


@pytest.mark.parametrize("scheme", ["ftp", "file", "gopher"])
async def test_other_schemes_are_refused(scheme: str) -> None:
    with pytest.raises(EhrUrlRefused, match="scheme"):
        await UrlPolicy(resolver=resolve_to_public_address).check(f"{scheme}://ehr.example.com/x")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/fhir",
        "https://10.1.2.3/fhir",
        "https://172.16.0.5/fhir",
        "https://192.168.1.1/fhir",
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/fhir",
        "https://224.0.0.1/fhir",
        "https://240.0.0.1/fhir",
        "https://[::1]/fhir",
        "https://[fe80::1]/fhir",
        "https://[fc00::1]/fhir",
        "https://[::ffff:127.0.0.1]/fhir",
        "https://[::ffff:10.0.0.1]/fhir",
        "https://[ff02::1]/fhir",
    ],
)
async def test_literal_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(EhrUrlRefused, match="not a public address"):
        await UrlPolicy(resolver=resolve_to_public_address).check(url)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1", "fe80::1%eth0", "::ffff:192.168.0.1"],
)
async def test_hostnames_resolving_to_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(EhrUrlRefused, match="not a public address"):
        await resolving_to(address).check("https://ehr.example.com/fhir")


async def test_one_bad_address_among_several_is_enough_to_refuse() -> None:
    with pytest.raises(EhrUrlRefused):
        await resolving_to("93.184.216.34", "10.0.0.1").check("https://ehr.example.com/fhir")


async def test_private_networks_can_be_allowed_for_dev() -> None:
    policy = UrlPolicy(allow_private_networks=True, allow_insecure_http=True)
    await policy.check("http://127.0.0.1:8090/fhir")
    await policy.check("https://[::1]/fhir")


async def test_unresolvable_host_is_refused() -> None:
    async def failing_dns(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(EhrUrlRefused, match="cannot resolve"):
        await UrlPolicy(resolver=failing_dns).check("https://nowhere.invalid/fhir")


async def test_credentials_in_url_are_refused() -> None:
    with pytest.raises(EhrUrlRefused, match="credentials"):
        await UrlPolicy(resolver=resolve_to_public_address).check("https://u:p@ehr.example.com/")


def test_ipv4_mapped_ipv6_is_judged_by_its_ipv4_address() -> None:
    import ipaddress

    assert not is_public_address(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert is_public_address(ipaddress.ip_address("::ffff:93.184.216.34"))
    assert is_public_address(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))


def test_same_origin_compares_scheme_host_and_port() -> None:
    assert same_origin("https://a.example/x", "https://a.example/y?z=1")
    assert not same_origin("https://a.example/x", "https://b.example/x")
    assert not same_origin("https://a.example/x", "http://a.example/x")
    assert not same_origin("https://a.example/x", "https://a.example:8443/x")
