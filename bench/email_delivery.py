#!/usr/bin/env python3
"""probe_email_delivery_seconds against Postfix's own delay=, to the tight ±50 ms figure.

tests/test_email.py checks the same with a bound that holds on a loaded shared box; this
benchmark keeps the tight figure. It starts the real mail stack (tests/mailstack.py: Postfix
and Dovecot on loopback, needs root) and an exporter in this process with one module whose
mails Postfix holds. For each of N probes it holds the mail --hold seconds, releases it, and
compares the probe's delivery time with the delay= Postfix logged for that mail. It prints
the differences' min/median/max and exits 1 when any is beyond --bound.

    .venv/bin/python bench/email_delivery.py            # 20 probes
    .venv/bin/python bench/email_delivery.py -n 50 --receive imap
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import mailstack  # the test suite's mail stack, started the same way

from sonde_exporter.app import build_app
from sonde_exporter.exporter import Exporter


def config(stack: mailstack.MailStack, receive: str) -> str:
    module = {
        "prober": "email",
        "timeout": "10s",
        "email": {
            "smtp": {"url": stack.url("smtp"), "starttls": "never"},
            "receive": {
                "url": stack.url(receive),
                "username": "tester",
                "password": stack.passwords["tester"],
                "poll_interval": "20ms",
                "tls_config": {"ca_file": str(stack.ca_file)},
            },
            "from": stack.address(),
            "to": stack.address(),
            "subject_prefix": f"{mailstack.HOLD_SUBJECT}bench",
        },
    }
    return yaml.safe_dump({"modules": {"hold": module}})


async def one_probe(client: TestClient, stack: mailstack.MailStack, hold: float) -> float:
    """Probe once, holding the mail `hold` s; return delivery seconds minus Postfix's delay=."""
    request = asyncio.create_task(client.get("/probe", params={"module": "hold", "debug": "true"}))
    deadline = time.monotonic() + 5
    while not stack.held():
        if time.monotonic() > deadline:
            raise RuntimeError("Postfix never held the probe mail")
        await asyncio.sleep(0.01)
    await asyncio.sleep(hold)
    await asyncio.to_thread(stack.release_held)
    text = await (await request).text()
    shown = text.split("Metrics that would have been returned:\n")[1].split("\nModule conf")[0]
    metrics = {s.name: s.value for f in text_string_to_metric_families(shown) for s in f.samples}
    if metrics.get("probe_success") != 1:
        raise RuntimeError(f"the probe failed:\n{text}")
    token = re.search(r"token=([0-9a-f]{32})", text)
    assert token is not None
    delay = await asyncio.to_thread(stack.delay, token.group(1))
    return metrics["probe_email_delivery_seconds"] - delay


async def run(
    config_file: Path, stack: mailstack.MailStack, args: argparse.Namespace
) -> list[float]:
    exporter = Exporter.from_file(config_file)
    async with TestClient(TestServer(build_app(exporter))) as client:
        return [await one_probe(client, stack, args.hold) for _ in range(args.probes)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--probes", type=int, default=20, help="probes to run (20)")
    parser.add_argument("--hold", type=float, default=0.4, help="seconds held (0.4)")
    parser.add_argument("--bound", type=float, default=0.05, help="largest |difference| (0.05)")
    parser.add_argument(
        "--receive", choices=("pop3", "pop3s", "imap", "imaps"), default="pop3", help="(pop3)"
    )
    args = parser.parse_args()
    stack = mailstack.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config_file = Path(tmp, "config.yml")
            config_file.write_text(config(stack, args.receive))
            differences = asyncio.run(run(config_file, stack, args))
    finally:
        stack.stop()
    worst = max(differences, key=abs)
    print(
        f"delivery - Postfix delay=, {len(differences)} probes over {args.receive}, "
        f"hold {args.hold:g}s: min {min(differences):+.3f}s, "
        f"median {statistics.median(differences):+.3f}s, max {max(differences):+.3f}s"
    )
    beyond = sum(1 for d in differences if abs(d) > args.bound)
    if beyond:
        print(f"FAIL: {beyond} of {len(differences)} beyond ±{args.bound:g}s (worst {worst:+.3f}s)")
        return 1
    print(f"ok: every difference within ±{args.bound:g}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
