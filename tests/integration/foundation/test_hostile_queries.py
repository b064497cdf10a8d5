"""A query the storage cannot answer is refused by name, never a 500 (#15 item 8): integers past
what a bigint holds, periods and moments in year 1 or 9999, ranges outside 2000–2100."""

from __future__ import annotations

from shared.settings import Settings
from tests.harness import auth, four_services

C = "bairuijing"


async def test_out_of_range_numbers_and_days_answer_422_naming_the_parameter(settings: Settings) -> None:
    secretary = auth(settings, "secretary", community=C)
    async with four_services(settings) as (_apps, clients):
        cases = [
            ("scoring", f"/v1/communities/{C}/board?period=9999-W52", "period"),
            ("scoring", f"/v1/communities/{C}/board?period=0001-01", "period"),
            ("scoring", f"/v1/communities/{C}/board?as_of=9999-12-31", "as_of"),
            ("scoring", f"/v1/communities/{C}/workers/w01/progress?at=0001-01-01T00:00:00%2B08:00", "at"),
            ("scoring", f"/v1/communities/{C}/workers/w01/progress?at=9999-12-31T23:00:00%2B08:00", "at"),
            ("visits", f"/v1/communities/{C}/audit-log?before=9223372036854775808", "before"),
            ("issues", f"/v1/communities/{C}/issues?offset=9223372036854775808", "offset"),
            ("issues", f"/v1/communities/{C}/statistics?from=0001-01&to=0001-12", "from"),
            ("visits", f"/v1/communities/{C}/workers/w01/records?from=0001-01-01&to=0001-12-31", "from"),
        ]
        for service, path, field in cases:
            answer = await clients[service].get(path, headers=secretary)
            assert answer.status_code == 422, (path, answer.status_code, answer.text)
            body = answer.json()
            error = body.get("error") or {}
            named = error.get("field") or str(body)
            assert field in named, (path, body)
