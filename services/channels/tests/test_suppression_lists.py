"""AJO's suppression list uploads (``/ajo/config/suppression/uploads``): a CSV file of
entries added at once, as a job that says how many records it had, how many were taken
and why each of the others was refused; the lists' ``property`` filters; and the admin
call that empties a sandbox's suppression list. Each test has a sandbox of its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from .conftest import Content, Requests, state
from .test_pipeline import WELCOME, person

UPLOADS = "/ajo/config/suppression/uploads"


def csv_file(*lines: str, bom: bool = False) -> bytes:
    return ("\ufeff" if bom else "").encode() + "\r\n".join(lines).encode() + b"\r\n"


async def uploaded(api: httpx.AsyncClient, data: bytes, **params: str) -> dict[str, object]:
    """Upload ``data`` as AJO's clients do (``multipart/form-data``, the file as
    ``file``); the job, once done."""
    sent = await api.post(UPLOADS, params=params, files={"file": ("suppressions.csv", data, "text/csv")})
    assert sent.status_code == 201, sent.text
    job_id = sent.json()["success"]["jobId"]
    job = await api.get(f"{UPLOADS}/{job_id}")
    assert job.status_code == 200, job.text
    found: dict[str, object] = job.json()
    return found


async def test_a_file_s_entries_are_added_and_its_bad_records_listed_with_why(api: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    kept = await api.post(
        "/ajo/config/suppression/addresses", json=[{"entity": {"entityValue": f"old-{tag}@example.com"}}]
    )
    old_id = kept.json()[0]["id"]
    data = csv_file(
        "Type,Value,Comments",
        f"EMAIL,Jane-{tag}@Example.com,asked by phone",
        f"email,old-{tag}@example.com,moved from our previous sender",
        f"DOMAIN,{tag}.example.org,",
        "PHONE,+4420123456,",
        "EMAIL,not-an-address,typo",
        "FAX,+331234,",
        "",
        f"EMAIL,jane-{tag}@example.com,said twice: the last one counts",
        bom=True,
    )
    job = await uploaded(api, data)

    assert {k: job[k] for k in ("status", "responseCode", "filename", "recordCount", "handledCount")} == {
        "status": "COMPLETE",
        "responseCode": 200,
        "filename": "suppressions.csv",
        "recordCount": 7,
        "handledCount": 5,
    }
    assert job["failedCount"] == 2
    assert job["failedRecords"] == [
        {
            "type": "EMAIL",
            "value": "not-an-address",
            "comments": "typo",
            "failureReason": "invalid format for the entry: not-an-address (not a valid email)",
        },
        {
            "type": "FAX",
            "value": "+331234",
            "comments": "",
            "failureReason": "unknown type 'FAX': EMAIL, DOMAIN, PHONE or PUSHTOKEN",
        },
    ]
    jane = (await api.get(f"/ajo/config/suppression/addresses/jane-{tag}@example.com")).json()
    assert (jane["suppressed"]["type"], jane["suppressed"]["comment"]) == (
        "MANUAL",
        "said twice: the last one counts",
    )
    assert jane["suppressed"]["user"]  # the caller
    old = (await api.get(f"/ajo/config/suppression/addresses/old-{tag}@example.com")).json()
    assert (old["id"], old["suppressed"]["comment"]) == (old_id, "moved from our previous sender")
    assert (await api.get(f"/ajo/config/suppression/domains/{tag}.example.org")).status_code == 200
    phone = (await api.get("/ajo/config/suppression/addresses/+4420123456")).json()
    assert phone["entity"]["type"] == "phone"


async def test_an_uploaded_address_is_not_sent_to(
    api: httpx.AsyncClient, content: Content, requests: Requests
) -> None:
    to = f"u{uuid.uuid4().hex[:10]}@example.com"
    await uploaded(api, csv_file("TYPE,VALUE", f"EMAIL,{to}"))
    await content.publish("welcome", WELCOME)
    body = requests.body("welcome", person(to))
    await requests.send(body)
    assert (await state(api, body["messageId"], "excluded"))["reason"] == "suppressed"


async def test_a_csv_body_fills_the_allowed_list(api: httpx.AsyncClient) -> None:
    sent = await api.post(
        UPLOADS,
        params={"type": "allowed"},
        content=csv_file("TYPE,VALUE", "DOMAIN,partner.example.com"),
        headers={"content-type": "text/csv"},
    )
    assert sent.status_code == 201, sent.text
    job = (await api.get(f"{UPLOADS}/{sent.json()['success']['jobId']}")).json()
    assert (job["listType"], job["filename"], job["handledCount"]) == ("allowed", None, 1)
    found = await api.get("/ajo/config/suppression/domains/partner.example.com", params={"type": "allowed"})
    assert found.status_code == 200
    assert (await api.get("/ajo/config/suppression/domains/partner.example.com")).status_code == 404


async def test_what_is_not_a_csv_of_entries_is_refused_and_makes_no_job(api: httpx.AsyncClient) -> None:
    cases = {
        "no TYPE column": (
            csv_file("EMAIL", "a@example.com"),
            "the header must name the columns TYPE and VALUE",
        ),
        "not UTF-8": (b"TYPE,VALUE\r\nEMAIL,\xff@example.com\r\n", "it is not UTF-8"),
        "empty": (b"", "it is empty"),
    }
    for name, (data, message) in cases.items():
        refused = await api.post(UPLOADS, files={"file": ("x.csv", data, "text/csv")})
        assert refused.status_code == 400, name
        assert refused.json()["errors"][0]["path"] == "/body/file", name
        assert refused.json()["errors"][0]["message"].startswith(message), name
    no_file = await api.post(UPLOADS, files={"other": ("x.csv", b"TYPE,VALUE\r\n", "text/csv")})
    assert (no_file.status_code, no_file.json()["errors"][0]["path"]) == (400, "/body/file")
    as_json = await api.post(UPLOADS, json=[{"entity": {"entityValue": "a@example.com"}}])
    assert as_json.status_code == 415
    declared = {"content-type": "text/csv", "content-length": str(64 * 1024 * 1024)}
    too_big = await api.post(UPLOADS, content=b"TYPE,VALUE\r\n", headers=declared)
    assert too_big.status_code == 413  # refused before the body is read (the limit is 32 MiB)
    assert (await api.get(UPLOADS)).json()["items"] == []


async def test_jobs_are_listed_newest_first_by_pages_and_can_be_forgotten(api: httpx.AsyncClient) -> None:
    jobs = []
    for n in range(3):
        job = await uploaded(api, csv_file("TYPE,VALUE", f"EMAIL,p{n}-{uuid.uuid4().hex[:6]}@example.com"))
        jobs.append(job["jobId"])
    first = (await api.get(UPLOADS, params={"limit": 2})).json()
    assert [j["jobId"] for j in first["items"]] == [jobs[2], jobs[1]]
    assert "failedRecords" not in first["items"][0]
    rest = (await api.get(UPLOADS, params={"limit": 2, "start": first["_page"]["next"]})).json()
    assert [j["jobId"] for j in rest["items"]] == [jobs[0]]
    assert rest["_page"]["next"] is None

    assert (await api.delete(f"{UPLOADS}/{jobs[0]}")).status_code == 204
    assert (await api.get(f"{UPLOADS}/{jobs[0]}")).status_code == 404
    assert (await api.delete(f"{UPLOADS}/{jobs[0]}")).status_code == 404
    assert (await api.get(f"{UPLOADS}/not-a-job")).status_code == 404
    bad_start = await api.get(UPLOADS, params={"start": "yesterday"})
    assert (bad_start.status_code, bad_start.json()["errors"][0]["path"]) == (400, "/query/start")


async def test_lists_filter_by_creation_date_and_channel(
    api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
) -> None:
    await uploaded(
        api, csv_file("TYPE,VALUE", "EMAIL,old@example.com", "EMAIL,new@example.com", "PHONE,+4420999")
    )
    await pool.execute(
        """UPDATE suppressed_addresses SET created_at = created_at - interval '2 days'
           WHERE sandbox = $1 AND value = 'old@example.com'""",
        sandbox,
    )
    yesterday = int((datetime.now(UTC) - timedelta(days=1)).timestamp() * 1000)

    async def listed(*filters: str) -> list[str]:
        page = await api.get("/ajo/config/suppression/addresses", params={"property": list(filters)})
        assert page.status_code == 200, page.text
        return sorted(e["entity"]["entityValue"] for e in page.json()["items"])

    assert await listed(f"creationdate<{yesterday}") == ["old@example.com"]
    assert await listed(f"creationdate>={yesterday}") == ["+4420999", "new@example.com"]
    assert await listed("channel==sms") == ["+4420999"]
    assert await listed("channel!=sms", f"creationdate>{yesterday}") == ["new@example.com"]
    for bad in ("colour==red", "channel<email", "creationdate>yesterday"):
        refused = await api.get(
            "/ajo/config/suppression/addresses", params={"property": ["channel==email", bad]}
        )
        assert refused.status_code == 400, bad
        assert refused.json()["errors"][0]["path"] == "/query/property/1"


async def test_the_admin_call_empties_the_sandbox_s_suppression_list_only(
    api: httpx.AsyncClient, sandbox: str
) -> None:
    await uploaded(api, csv_file("TYPE,VALUE", "EMAIL,a@example.com", "DOMAIN,b.example.com"))
    await uploaded(api, csv_file("TYPE,VALUE", "EMAIL,friend@example.com"), type="allowed")
    elsewhere = await api.delete(f"/ajo/config/suppression/admin/org/{sandbox}-other")
    assert elsewhere.status_code == 403
    emptied = await api.delete(f"/ajo/config/suppression/admin/any-org/{sandbox}")
    assert (emptied.status_code, emptied.json()) == (202, {"deleted": 2})
    for kind in ("addresses", "domains"):
        assert (await api.get(f"/ajo/config/suppression/{kind}")).json()["items"] == []
    allowed = await api.get("/ajo/config/suppression/addresses", params={"type": "allowed"})
    assert [e["entity"]["entityValue"] for e in allowed.json()["items"]] == ["friend@example.com"]
