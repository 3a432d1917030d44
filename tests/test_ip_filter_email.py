"""An email module's credentials go only to its own servers or to addresses an `allowed` entry
names: a target that sends them elsewhere is refused (403) before any connection, so no AUTH
reaches it. Two recording SMTP listeners on loopback stand for the module's server and for
a server the caller chose. An SMTP override spelled as the unspecified address (which Linux
connects to loopback) is caught the same way."""

from __future__ import annotations

import asyncio

from helpers import failure_reasons, probe
from ipfilter_listeners import UNSPECIFIED, Listener, loopback_pair, numeric_resolver

from sonde_exporter.config import parse_config


class SmtpRecorder:
    """A minimal SMTP server that accepts anything and records the commands it was sent."""

    def __init__(self) -> None:
        self.connections = 0
        self.commands: list[str] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 recorder ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line.split(b" ", 1)[0].strip().upper().decode()
                self.commands.append(verb)
                if verb == "EHLO":
                    writer.write(b"250-recorder\r\n250 AUTH PLAIN LOGIN\r\n")
                elif verb == "AUTH":
                    writer.write(b"235 2.7.0 accepted\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go on\r\n")
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        finally:
            writer.close()


MODULE = """
  {name}:
    prober: email
    timeout: 2s
    {extra}
    email:
      smtp: {{url: "smtp://127.0.0.1:{own}", starttls: never{login}}}
      receive:
        url: "pop3://127.0.0.1:{dead}"
        starttls: never
        username: probe
        password: mailbox-secret
      from: probe@example.org
      to: probe@example.org
"""
LOGIN = ", username: probe, password: smtp-secret"


async def started(recorder: SmtpRecorder, host: str) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(recorder, host, 0)
    return server, int(server.sockets[0].getsockname()[1])


async def settle(recorder: SmtpRecorder, verb: str) -> list[str]:
    """The recorder's commands once `verb` came (or after 2s): the probe answers before the
    server's side has necessarily run."""
    for _ in range(200):
        if verb in recorder.commands:
            break
        await asyncio.sleep(0.01)
    return recorder.commands


async def test_credentials_never_go_to_a_server_the_target_chose(exporter_client, closed_port):
    own, other = SmtpRecorder(), SmtpRecorder()
    own_server, own_port = await started(own, "127.0.0.1")
    other_server, other_port = await started(other, "127.0.0.2")
    modules = {
        "authed": ("", LOGIN),
        "named": ("ip_filter: {default: deny, allowed: [127.0.0.1, 127.0.0.2/32]}", LOGIN),
        "by_default": ("ip_filter: {default: allow, denied: [10.0.0.0/8]}", LOGIN),
        "anonymous": ("", ""),
    }
    config = "modules:" + "".join(
        MODULE.format(name=name, extra=extra, login=login, own=own_port, dead=closed_port)
        for name, (extra, login) in modules.items()
    )
    parse_config(config, "check.yml")  # a config error here would hide behind the fixture
    client = await exporter_client(config)
    try:
        # The module's own server gets the login (the receive side then fails: nothing there).
        status, _ = await probe(client, module="authed", target="")
        assert status == 200
        assert (await settle(own, "AUTH")).count("AUTH") == 1
        # Another server, however named, with no `allowed` entry for it: refused, unreached.
        for module in ("authed", "by_default"):
            for target in (f"127.0.0.2:{other_port}", f"smtp://127.0.0.2:{other_port}"):
                status, body = await probe(client, module=module, target=target)
                assert status == 403, body
                assert body.count("\n") == 1
                assert "overrides the module's mail server" in body
                assert "smtp-secret" not in body
        await asyncio.sleep(0.05)  # a connection that slipped through would be accepted by now
        assert other.connections == 0
        # Named by an allowed entry: the login goes there, as configured.
        status, _ = await probe(client, module="named", target=f"127.0.0.2:{other_port}")
        assert status == 200
        assert "AUTH" in await settle(other, "AUTH")
        # No credentials at stake: the override is judged by the filter alone (allow).
        other.commands.clear()
        status, _ = await probe(client, module="anonymous", target=f"127.0.0.2:{other_port}")
        assert status == 200
        commands = await settle(other, "DATA")
        assert "DATA" in commands and "AUTH" not in commands
    finally:
        for server in (own_server, other_server):
            server.close()
            await server.wait_closed()


async def test_an_smtp_override_to_the_unspecified_address_is_refused(
    exporter_client, closed_port, monkeypatch
):
    own, v4, v6 = SmtpRecorder(), SmtpRecorder(), SmtpRecorder()
    own_server, own_port = await started(own, "127.0.0.1")
    public = "ip_filter: {denied: [127.0.0.0/8, '::1']}"  # the README's deny-list, in short
    modules = {"authed": ("", LOGIN), "public": (public, ""), "public_authed": (public, LOGIN)}
    config = "modules:" + "".join(
        MODULE.format(name=name, extra=extra, login=login, own=own_port, dead=closed_port)
        for name, (extra, login) in modules.items()
    )
    try:
        async with loopback_pair(v4, v6) as port:
            client = await exporter_client(config)
            numeric_resolver(monkeypatch)  # 0x0 resolves to 0.0.0.0, and no name leaves the box
            for host in UNSPECIFIED:
                for target in (f"{host}:{port}", f"smtp://{host}:{port}"):
                    for module in modules:
                        status, body = await probe(client, module=module, target=target)
                        assert status == 403, (module, target, body)
                        assert body.count("\n") == 1 and "smtp-secret" not in body
                        reason = (
                            "overrides the module's mail server"
                            if module == "authed"
                            else "(read as"
                        )
                        assert reason in body, body
            await asyncio.sleep(0.05)  # a connection that slipped through would be accepted by now
            assert (v4.connections, v6.connections, own.connections) == (0, 0, 0)
    finally:
        own_server.close()
        await own_server.wait_closed()


MAILBOX_MODULE = """
  {name}:
    prober: email
    timeout: 2s
    ip_filter: {{denied: [127.0.0.1, "::1"]}}
    email:
      smtp: {{url: "smtp://127.0.0.2:{smtp}", starttls: never}}
      receive:
        url: "pop3://{mailbox}"
        starttls: never
        username: probe
        password: mailbox-secret
      from: probe@example.org
      to: probe@example.org
"""


async def test_the_mailbox_connection_goes_through_the_filter_too(exporter_client):
    """The module's own receive.url is judged like every socket a probe opens: the mail is
    sent, the mailbox (here spelled as the unspecified address, which Linux connects to
    loopback) is refused with target_forbidden, and its listeners count no connection."""
    smtp, v4, v6 = SmtpRecorder(), Listener(), Listener()
    smtp_server, smtp_port = await started(smtp, "127.0.0.2")
    try:
        async with loopback_pair(v4, v6) as port:
            mailboxes = {
                "v4": f"0.0.0.0:{port}",
                "v6": f"[::]:{port}",
                "named": f"127.0.0.1:{port}",
            }
            config = "modules:" + "".join(
                MAILBOX_MODULE.format(name=name, smtp=smtp_port, mailbox=mailbox)
                for name, mailbox in mailboxes.items()
            )
            client = await exporter_client(config)
            for module in mailboxes:
                status, body = await probe(client, module=module, target="")
                assert status == 200, body
                assert failure_reasons(body) == ["target_forbidden"], (module, body)
            assert (await settle(smtp, "DATA")).count("DATA") == len(mailboxes)
            await asyncio.sleep(0.05)  # a connection that slipped through would be accepted by now
            assert (v4.connections, v6.connections) == (0, 0)
    finally:
        smtp_server.close()
        await smtp_server.wait_closed()
