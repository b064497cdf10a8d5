"""The newer official NATS clients (``nats-core`` + ``nats-jetstream``) doing what gridwork's event
store and replay reader do, for ``gridwork bench clients``.

This file runs in ANOTHER interpreter (those clients need Python ≥ 3.13) with only those two
packages installed, so it imports nothing of gridwork: the parent process writes the exact
messages (subject, headers, payload) it appends with nats-py into a JSON-lines file, and this
probe appends the same bytes to a fresh stream with the same windowed pipelining (at most
``--window`` acks outstanding), then reads them all back through an ack-less pull consumer in
batches of ``--batch``, as a replay does.  It prints one JSON object: events/s of each phase.

    python3.13 services/cli/client_probe.py --url nats://… --stream S --messages FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any


async def probe(
    url: str, stream: str, subjects: str, payloads: list[tuple[str, bytes, dict[str, str]]], window: int, batch: int
) -> dict[str, Any]:
    import nats.client
    import nats.jetstream

    client = await nats.client.connect(url)
    js = nats.jetstream.new(client)
    try:
        await js.create_stream(name=stream, subjects=[subjects])
        # Append: every message carries its dedupe id and expected-sequence check, like the event store.
        pending: set[asyncio.Task[Any]] = set()
        started = time.perf_counter()
        for subject, payload, headers in payloads:
            if len(pending) >= window:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            pending.add(asyncio.create_task(js.publish(subject, payload, headers=headers, timeout=30)))
        if pending:
            for task in await asyncio.gather(*pending):
                _ = task
        append_seconds = time.perf_counter() - started
        # Replay: an ack-less consumer from the first message, fetched in batches.
        consumer = await js.create_consumer(stream, name="probe", ack_policy="none", deliver_policy="all")
        got = 0
        started = time.perf_counter()
        while got < len(payloads):
            # ask for no more than is left: a fetch for more waits out max_wait at the end
            fetched = await consumer.fetch(max_messages=min(batch, len(payloads) - got), max_wait=2)
            async for msg in fetched:
                _ = msg.data
                got += 1
        read_seconds = time.perf_counter() - started
    finally:
        await client.close()
    return {
        "client": "nats-core + nats-jetstream",
        "python": sys.version.split()[0],
        "events": len(payloads),
        "append_events_per_s": len(payloads) / append_seconds,
        "consume_events_per_s": len(payloads) / read_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--subjects", required=True, help="the stream's subject filter")
    parser.add_argument("--messages", required=True, help="JSON lines: subject, headers, payload")
    parser.add_argument("--window", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    with open(args.messages, encoding="utf-8") as f:
        payloads = [(m["subject"], m["payload"].encode(), m["headers"]) for m in map(json.loads, f)]
    result = asyncio.run(probe(args.url, args.stream, args.subjects, payloads, args.window, args.batch))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
