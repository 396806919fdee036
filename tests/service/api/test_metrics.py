"""``/metrics``: Prometheus text with request counts by route template; a token when required."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from callcenter.config import HttpSettings
from callcenter.model.vocabulary import Role
from tests.service.api.conftest import Api, MakeApi, assert_error


def _request_counts(text: str) -> dict[tuple[str, str, str], float]:
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "callcenter_http_requests_total":
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] = sample.value
    return counts


async def _metrics(api: Api, headers: dict[str, str] | None = None) -> str:
    response = await api.client.get("/metrics", headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    return await response.text()


async def test_metrics_are_open_by_default_and_count_requests_by_route_template(make_api: MakeApi) -> None:
    api = await make_api()
    await api.client.get("/api/v1/health")
    await api.client.get("/api/v1/health")
    await api.client.delete("/api/v1/tokens/tok_secretish", headers=api.as_role(Role.ADMIN))
    await api.client.get("/api/v1/tokens")
    counts = _request_counts(await _metrics(api))
    assert counts[("GET", "/api/v1/health", "200")] == 2
    assert counts[("DELETE", "/api/v1/tokens/{token_id}", "404")] == 1
    assert counts[("GET", "/api/v1/tokens", "401")] == 1


async def test_metrics_carry_no_raw_paths_that_may_hold_personal_data(make_api: MakeApi) -> None:
    api = await make_api()
    await api.client.get("/api/v1/calls/%2B14155550100")
    await api.client.get("/api/v1/nothing/%2B14155550111")
    await api.client.delete("/api/v1/tokens/%2B14155550199", headers=api.as_role(Role.ADMIN))
    text = await _metrics(api)
    assert "4155550100" not in text and "4155550199" not in text and "4155550111" not in text
    assert _request_counts(text)[("GET", "unmatched", "404")] == 1
    assert _request_counts(text)[("GET", "/api/v1/calls/{call_id}", "401")] == 1


async def test_metrics_require_a_supervisor_token_when_configured(make_api: MakeApi) -> None:
    api = await make_api(settings=HttpSettings(metrics_require_token=True))
    await assert_error(await api.client.get("/metrics"), 401, "unauthenticated")
    await assert_error(await api.client.get("/metrics", headers=api.as_role(Role.AGENT)), 403, "forbidden")
    assert "callcenter_http_requests_total" in await _metrics(api, api.as_role(Role.SUPERVISOR))
    assert "callcenter_http_requests_total" in await _metrics(api, api.as_role(Role.ADMIN))


async def test_each_app_counts_into_its_own_registry(make_api: MakeApi) -> None:
    first, second = await make_api(), await make_api()
    await first.client.get("/api/v1/health")
    assert ("GET", "/api/v1/health", "200") not in _request_counts(await _metrics(second))
