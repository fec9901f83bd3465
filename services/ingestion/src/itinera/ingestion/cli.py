"""``itinera ingest FILE --dataset ID``: stream a large file into a dataset.

JSON (an array of entities), NDJSON (one entity per line) or CSV with a mapping
(``--map column=xdm.path``, repeatable, or ``--mapping FILE.json``; a path with
``identityMap.NS`` adds an identity of namespace NS). The file is read as a stream
and sent in chunks to ``POST /v1/datasets/{id}/events`` over HTTP; a progress bar
shows records and bytes, and the summary counts accepted and refused records and
lists the first refusals with their reasons. The exit status is 0 when every record
was accepted, 1 when some were refused, 2 on a usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from tqdm import tqdm

from itinera.common.auth import mint_token
from itinera.common.settings import common_settings


def register(commands: Any) -> None:
    ingest = commands.add_parser("ingest", help="stream a JSON, NDJSON or CSV file into a dataset")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--dataset", required=True, help="the dataset id")
    ingest.add_argument("--url", default=os.environ.get("ITINERA_INGESTION_URL", "http://127.0.0.1:8001"))
    ingest.add_argument(
        "--token",
        default=os.environ.get("ITINERA_TOKEN"),
        help="bearer token (default: $ITINERA_TOKEN, else a development token)",
    )
    ingest.add_argument("--sandbox", default=None)
    ingest.add_argument(
        "--format",
        choices=["json", "ndjson", "csv"],
        default=None,
        help="default: from the file extension",
    )
    ingest.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=PATH",
        help="CSV column to XDM path (repeatable)",
    )
    ingest.add_argument("--mapping", type=Path, help="JSON file {column: path} for CSV")
    ingest.add_argument("--chunk", type=int, default=500, help="records per request")
    ingest.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    ingest.set_defaults(func=main)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = args.file.suffix.lower()
    return {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}.get(suffix, "ndjson")


def set_path(entity: dict[str, Any], path: str, value: Any) -> None:
    """Put ``value`` at a dotted XDM path; ``identityMap.NS`` appends an identity."""
    parts = path.split(".")
    if parts[0] == "identityMap" and len(parts) == 2:
        if value not in ("", None):
            entity.setdefault("identityMap", {}).setdefault(parts[1], []).append({"id": value})
        return
    node = entity
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _typed(value: str) -> Any:
    """CSV cells are text: numbers and booleans become JSON numbers and booleans."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def csv_entities(path: Path, mapping: dict[str, str]) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            entity: dict[str, Any] = {}
            for column, target in mapping.items():
                cell = row.get(column)
                if cell is not None and cell != "":
                    set_path(
                        entity,
                        target,
                        _typed(cell) if not target.startswith("identityMap.") else cell,
                    )
            yield entity


def ndjson_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield line.rstrip(b"\r\n")


def json_entities(path: Path) -> Iterator[bytes]:
    document = orjson.loads(path.read_bytes())
    if not isinstance(document, list):
        raise SystemExit(f"{path}: a JSON file must hold an array of entities")
    for item in document:
        yield orjson.dumps(item)


def _chunks(lines: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _send(args: argparse.Namespace, lines: Iterator[bytes]) -> int:
    token = args.token or mint_token(common_settings(), scopes=["ingest:write"], sandbox=args.sandbox)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/x-ndjson"}
    if args.sandbox:
        headers["x-sandbox-name"] = args.sandbox
    accepted = refused = 0
    failures: list[str] = []
    total_bytes = args.file.stat().st_size
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="ingesting", file=sys.stderr)
    semaphore = asyncio.Semaphore(args.concurrency)

    async def post(client: httpx.AsyncClient, start: int, chunk: list[bytes]) -> None:
        nonlocal accepted, refused
        body = b"\n".join(chunk) + b"\n"
        async with semaphore:
            response = await client.post(f"/v1/datasets/{args.dataset}/events", content=body, headers=headers)
        if response.status_code not in (200, 207):
            raise SystemExit(f"the server refused a request: {response.status_code} {response.text[:500]}")
        result = response.json()
        accepted += result["accepted"]
        refused += result["refused"]
        for item in result["results"]:
            if item["status"] != 200 and len(failures) < 10:
                failures.append(f"record {start + item['index'] + 1}: {item['message']}")
        bar.update(len(body))
        bar.set_postfix(accepted=accepted, refused=refused)

    try:
        async with httpx.AsyncClient(base_url=args.url, timeout=120) as client:
            tasks: set[asyncio.Task[None]] = set()
            start = 0
            for chunk in _chunks(lines, args.chunk):
                task = asyncio.create_task(post(client, start, chunk))
                tasks.add(task)
                start += len(chunk)
                if len(tasks) >= args.concurrency * 2:
                    done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for finished in done:
                        finished.result()
            for failure in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(failure, BaseException):
                    raise failure
    except httpx.HTTPError as exc:
        bar.close()
        print(f"cannot reach ingestion at {args.url}: {exc}", file=sys.stderr)
        return 2
    bar.close()
    print(f"{accepted + refused} record(s): {accepted} accepted, {refused} refused")
    for refusal in failures:
        print(f"  {refusal}")
    if refused > len(failures):
        print(f"  ... and {refused - len(failures)} more (GET /v1/dlq?dataset={args.dataset})")
    return 0 if refused == 0 else 1


def main(args: argparse.Namespace) -> int:
    if not args.file.exists():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2
    kind = _format(args)
    if kind == "csv":
        mapping: dict[str, str] = {}
        if args.mapping:
            mapping.update(orjson.loads(args.mapping.read_bytes()))
        for item in args.map:
            column, _, target = item.partition("=")
            if not target:
                print(f"--map {item!r}: expected COLUMN=PATH", file=sys.stderr)
                return 2
            mapping[column] = target
        if not mapping:
            print("a CSV file needs a mapping: --map COLUMN=PATH or --mapping FILE", file=sys.stderr)
            return 2
        lines: Iterator[bytes] = (orjson.dumps(e) for e in csv_entities(args.file, mapping))
    elif kind == "json":
        lines = json_entities(args.file)
    else:
        lines = ndjson_lines(args.file)
    return asyncio.run(_send(args, lines))
