"""query_response dialogues against real loopback servers: expect, send, bytes, labels, STARTTLS."""

from __future__ import annotations

import asyncio

import pytest
from helpers import assert_failed, assert_succeeded, parse_metrics, probe

from sonde_exporter.config import ConfigError, load_config


def speaker(*lines: bytes, close: bool = True):
    """A server that writes `lines`, then closes (or, with close=False, waits for the client)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.writelines(lines)
        await writer.drain()
        if not close:
            await reader.read()
        writer.close()

    return handle


async def run(exporter_client, tcp_server, handler, steps: str, **params: str) -> str:
    port = await tcp_server(handler)
    client = await exporter_client(
        "modules:\n  dialogue:\n    prober: tcp\n    timeout: 2s\n    tcp:\n"
        "      query_response:\n" + steps
    )
    status, body = await probe(client, module="dialogue", target=f"localhost:{port}", **params)
    assert status == 200
    return body


async def test_banner(exporter_client, tcp_server):
    body = await run(
        exporter_client,
        tcp_server,
        speaker(b"220-mail.example.org ESMTP\r\n", b"220 ready\r\n", close=False),
        '        - expect: "^220 ready$"\n',
    )
    metrics = assert_succeeded(body)
    assert metrics["probe_failed_due_to_regex"] == 0
    assert metrics["probe_failed_due_to_bytes"] == 0
    assert 'probe_tcp_duration_seconds{phase="query"}' in metrics


async def test_last_line_without_newline_still_matches(exporter_client, tcp_server):
    body = await run(
        exporter_client, tcp_server, speaker(b"SSH-2.0-OpenSSH_9.2"), '        - expect: "^SSH-2"\n'
    )
    assert_succeeded(body)


async def test_regex_mismatch_at_eof(exporter_client, tcp_server):
    body = await run(
        exporter_client,
        tcp_server,
        speaker(b"554 go away\r\n", b"bye\r\n"),
        '        - expect: "^220 "\n',
    )
    metrics = assert_failed(body, "expect_mismatch")
    assert metrics["probe_failed_due_to_regex"] == 1
    assert metrics["probe_failed_due_to_bytes"] == 0


@pytest.mark.parametrize(
    ("banner", "succeeds"),
    [(b"OK ready\r\n", True), (b"+OK POP3 ready\r\n", False)],
)
async def test_blackbox_pop3s_banner_pattern_means_what_go_means(
    exporter_client, tcp_server, banner, succeeds
):
    """blackbox_exporter's sample `expect: "^+OK"` loads; as in Go it is (^)+ then OK, so a
    "+OK" banner does not match it (`^\\+OK` does)."""
    body = await run(exporter_client, tcp_server, speaker(banner), '        - expect: "^+OK"\n')
    if succeeds:
        assert_succeeded(body)
    else:
        assert assert_failed(body, "expect_mismatch")["probe_failed_due_to_regex"] == 1


async def test_escaped_plus_matches_a_pop3_banner(exporter_client, tcp_server):
    body = await run(
        exporter_client,
        tcp_server,
        speaker(b"+OK POP3 ready\r\n"),
        '        - expect: "^\\\\+OK (\\\\w+)"\n          labels: [{name: proto, value: "${1}"}]\n',
    )
    assert assert_succeeded(body)['probe_expect_info{proto="POP3"}'] == 1


async def test_debug_output_shows_the_lines_read(exporter_client, tcp_server):
    body = await run(
        exporter_client,
        tcp_server,
        speaker(b"554 go away\r\n"),
        '        - expect: "^220 "\n',
        debug="true",
    )
    assert 'msg="Read line" line="554 go away"' in body
    assert "connection closed before a line matched '^220 '" in body


async def test_send_expands_capture_groups(exporter_client, tcp_server):
    received: list[bytes] = []

    async def challenge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* HELLO token=ab12 user=probe\r\n")
        received.append(await reader.readline())
        writer.write(b"+OK\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    body = await run(
        exporter_client,
        tcp_server,
        challenge,
        '        - expect: "token=(\\\\w+) user=(?P<user>\\\\w+)"\n'
        '          send: "AUTH ${1} $user $$ ${9} ${nope}\\r"\n'
        '        - expect: "^\\\\+OK"\n',
    )
    assert_succeeded(body)
    assert received == [b"AUTH ab12 probe $  \r\n"]


async def test_send_without_expect_is_sent_verbatim(exporter_client, tcp_server):
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.put_nowait(await reader.readline())
        writer.close()

    body = await run(exporter_client, tcp_server, record, '        - send: "PRICE $1"\n')
    assert_succeeded(body)
    # The probe may answer before this server (on the same loop) has read the line.
    assert await asyncio.wait_for(received.get(), 5) == b"PRICE $1\n"


async def test_labels_export_captured_values(exporter_client, tcp_server):
    body = await run(
        exporter_client,
        tcp_server,
        speaker(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", close=False),
        '        - expect: "^SSH-2.0-([^ ]+) (.*)$"\n'
        "          labels:\n"
        "            - name: version\n"
        '              value: "${1}"\n'
        "            - name: comment\n"
        '              value: "os=${2}"\n',
    )
    metrics = assert_succeeded(body)
    key = 'probe_expect_info{comment="os=Debian-2+deb12u3",version="OpenSSH_9.2p1"}'
    assert metrics[key] == 1


async def test_expect_bytes_match(exporter_client, tcp_server):
    received: list[bytes] = []

    async def postgres(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(9))
        writer.write(b"S")
        await writer.drain()
        await reader.read()
        writer.close()

    body = await run(
        exporter_client,
        tcp_server,
        postgres,
        '        - send: "\\x00\\x00\\x00\\x08\\x04\\xd2\\x16\\x2f"\n        - expect_bytes: "S"\n',
    )
    metrics = assert_succeeded(body)
    assert received == [b"\x00\x00\x00\x08\x04\xd2\x16\x2f\n"]
    assert metrics["probe_failed_due_to_bytes"] == 0


async def test_expect_bytes_mismatch(exporter_client, tcp_server):
    body = await run(
        exporter_client, tcp_server, speaker(b"N", close=False), '        - expect_bytes: "S"\n'
    )
    metrics = assert_failed(body, "expect_mismatch")
    assert metrics["probe_failed_due_to_bytes"] == 1
    assert metrics["probe_failed_due_to_regex"] == 0


async def test_expect_bytes_cut_short_by_eof(exporter_client, tcp_server):
    body = await run(exporter_client, tcp_server, speaker(b"+O"), '        - expect_bytes: "+OK"\n')
    assert parse_metrics(body)["probe_failed_due_to_bytes"] == 1
    assert_failed(body, "expect_mismatch")


async def test_overlong_line_fails_without_waiting_for_the_timeout(exporter_client, tcp_server):
    body = await run(
        exporter_client,
        tcp_server,
        speaker(b"x" * 200_000, close=False),
        '        - expect: "^220"\n',
    )
    metrics = assert_failed(body, "expect_mismatch")
    assert metrics["probe_duration_seconds"] < 2


async def test_starttls_mid_dialogue(exporter_client, tcp_server, pki):
    """An SMTP-like server: banner, EHLO, STARTTLS, then EHLO again over TLS."""
    server_context = pki.server_context()
    seen: list[tuple[str, bytes]] = []

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.example.org ESMTP\r\n")
        seen.append(("plain", await reader.readline()))
        writer.write(b"250-mx.example.org\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
        seen.append(("plain", await reader.readline()))
        writer.write(b"220 2.0.0 Ready to start TLS\r\n")
        await writer.drain()
        await writer.start_tls(server_context)
        seen.append(("tls", await reader.readline()))
        writer.write(b"250-mx.example.org\r\n250 AUTH PLAIN\r\n")
        seen.append(("tls", await reader.readline()))
        writer.write(b"221 2.0.0 Bye\r\n")
        await writer.drain()
        writer.close()

    port = await tcp_server(smtp)
    client = await exporter_client(
        f"""
        modules:
          smtp_starttls:
            prober: tcp
            timeout: 2s
            tcp:
              tls_config:
                ca_file: {pki.ca_file}
              query_response:
                - expect: "^220 "
                - send: "EHLO prober\\r"
                - expect: "^250-STARTTLS"
                - send: "STARTTLS\\r"
                - expect: "^220 "
                - starttls: true
                - send: "EHLO prober\\r"
                - expect: "^250 AUTH"
                - send: "QUIT\\r"
                - expect: "^221 "
        """
    )
    _, body = await probe(client, module="smtp_starttls", target=f"localhost:{port}")
    metrics = assert_succeeded(body)
    assert seen == [
        ("plain", b"EHLO prober\r\n"),
        ("plain", b"STARTTLS\r\n"),
        ("tls", b"EHLO prober\r\n"),
        ("tls", b"QUIT\r\n"),
    ]
    assert metrics['probe_tls_version_info{version="TLS 1.3"}'] == 1
    assert "probe_ssl_earliest_cert_expiry" in metrics
    assert 'probe_tcp_duration_seconds{phase="tls"}' in metrics
    assert 'probe_tcp_duration_seconds{phase="query"}' in metrics


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        (
            '- expect: "(a)"\n  labels: [{name: v, value: "${1}"}, {name: v, value: x}]',
            ":8: modules.m.tcp.query_response[0].labels: a label name may appear only once",
        ),
        (
            '- expect: "a"\n  labels: [{name: v, value: x}]\n'
            '- expect: "b"\n  labels: [{name: w, value: y}]',
            ":6: modules.m.tcp.query_response: steps with labels must all use the same",
        ),
    ],
    ids=["duplicate", "two_label_sets"],
)
def test_labels_that_cannot_be_exported_are_config_errors(write_config, steps, error):
    text = "modules:\n  m:\n    prober: tcp\n    tcp:\n      query_response:\n"
    text += "".join(f"        {line}\n" for line in steps.splitlines())
    path = write_config("\n" + text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}{error}" in str(caught.value)
