"""Where a custom action may call, and the parameters of its templates."""

from __future__ import annotations

import pytest

from itinera.journeys.actions.targets import check_url, endpoint, parameters

ALLOWED = frozenset({"crm.internal", "10.1.2.3", "::1"})


def codes(url: str, allowed: frozenset[str] = ALLOWED) -> list[str]:
    return [problem.code for problem in check_url(url, allowed)[1]]


class TestHosts:
    @pytest.mark.parametrize(
        "url",
        [
            "https://127.0.0.1/x",
            "https://127.1/x",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://017700000001/",
            "https://10.0.0.5/",
            "https://192.168.1.10:8443/",
            "https://172.16.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[2002:7f00:1::]/",
            "https://224.0.0.1/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
        ],
    )
    def test_private_loopback_and_reserved_addresses_are_refused(self, url: str) -> None:
        assert codes(url) == ["private-host"]

    @pytest.mark.parametrize(
        "url",
        ["https://crm.internal/v1", "http://10.1.2.3:8080/hook", "https://[::1]/", "https://CRM.internal./"],
    )
    def test_the_allow_list_lets_hosts_through(self, url: str) -> None:
        assert codes(url) == []

    @pytest.mark.parametrize(
        "url",
        [
            "https://api.example.com/v1/{{customerId}}?q={{q}}",
            "http://93.184.216.34/",
            "https://[2606:4700::1111]/",
        ],
    )
    def test_public_hosts_are_accepted(self, url: str) -> None:
        assert codes(url, frozenset()) == []

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://example.com/",
            "https://user:secret@example.com/",
            "https://{{host}}/x",
            "{{base}}/path",
            "https://exa mple.com/",
            "https://example.com:99999/",
            "https:///path",
            "https://[::1/",
        ],
    )
    def test_malformed_urls_are_refused(self, url: str) -> None:
        found = codes(url, frozenset())
        assert found
        assert set(found) == {"url"}

    def test_the_endpoint_names_scheme_host_and_port(self) -> None:
        for url, expected in (
            ("https://Api.Example.com/v1", "https://api.example.com:443"),
            ("http://example.com:8080/x", "http://example.com:8080"),
            ("https://[2606:4700::1111]/", "https://[2606:4700::1111]:443"),
        ):
            parts, _ = check_url(url, frozenset())
            assert parts is not None
            assert endpoint(parts) == expected


class TestParameters:
    def test_parameters_are_found_once_in_order(self) -> None:
        assert parameters('{"a": {{ email }}, "b": {{orderId}}, "c": {{email}}}') == (
            ["email", "orderId"],
            [],
        )

    @pytest.mark.parametrize("template", ["{{1x}}", "{{email}", "a }} b", "{{ }}"])
    def test_stray_braces_are_reported(self, template: str) -> None:
        assert parameters(template)[1]
