"""A throw-away Postfix + Dovecot on loopback for the email prober tests.

Postfix takes mail on three ports (plain SMTP, submission with STARTTLS + AUTH, SMTPS + AUTH)
and hands it to Dovecot over LMTP; Dovecot serves POP3 (STLS), POP3S, IMAP (STARTTLS) and
IMAPS and does SASL for Postfix, so one passwd file covers every protocol. Every port listens
on 127.0.0.1 and on ::1. Everything lives in a fresh temporary directory with free ports;
both masters are stopped by PID.
Field notes behind every setting: ../shared/docs/mailstack-notes.md (relative to the repository).

Run it by hand with `python tests/mailstack.py` (starts, prints the ports, waits for Enter).
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

DOMAIN = "example.test"
USERS = ("tester", "other", "prometheus")
"""Mailboxes: the probes' own, another one for "sent but never arrives", and one for the
end-to-end Prometheus test (a probe in flight when that test stops leaves its mail behind)."""

AUTHRES_SUBJECT = "authres-"
"""Mails whose subject starts with this get an Authentication-Results header from Postfix."""
AUTHRES_HEADER = (
    "Authentication-Results: localhost; dkim=pass header.d=example.test header.s=sel; "
    "spf=softfail smtp.mailfrom=example.test; dmarc=fail (p=none) header.from=example.test; "
    "arc=none"
)
HOLD_SUBJECT = "hold-"
"""Mails whose subject starts with this are put on hold until `release()`."""

_PORT_NAMES = ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps")
LISTEN = ("127.0.0.1", "::1")
"""Every port listens on both loopback addresses (the email prober's address choice)."""


@dataclass
class MailStack:
    root: Path
    ports: dict[str, int]
    passwords: dict[str, str]
    ca: trustme.CA
    ca_file: Path
    pids: dict[str, int] = field(default_factory=dict)

    def address(self, user: str = "tester") -> str:
        return f"{user}@{DOMAIN}"

    def url(self, name: str, ip: str = "127.0.0.1") -> str:
        scheme = {"submission": "smtp", "smtp": "smtp"}.get(name, name)
        host = f"[{ip}]" if ":" in ip else ip
        return f"{scheme}://{host}:{self.ports[name]}"

    @property
    def maillog(self) -> Path:
        return self.root / "postfix" / "maillog"

    @property
    def dovecot_log(self) -> Path:
        return self.root / "dovecot" / "dovecot.log"

    def maildir(self, user: str = "tester") -> Path:
        return self.root / "mail" / user / "Maildir"

    def postfix(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a Postfix admin command (postsuper, postqueue) against this instance."""
        conf = str(self.root / "postfix" / "conf")
        return subprocess.run(
            [_tool(tool), "-c", conf, *args], capture_output=True, text=True, check=True
        )

    def release_held(self) -> int:
        """Release every held mail and flush the queue; return how many were released."""
        out = self.postfix("postsuper", "-H", "ALL")
        match = re.search(r"Released from hold: (\d+) message", out.stderr)
        self.postfix("postqueue", "-f")
        return int(match.group(1)) if match else 0

    def queue_log(self, token: str, pattern: str, wait: float = 2.0) -> re.Match[str]:
        """The first match of `pattern` on a maillog line of the probe mail with this token
        (found by its Message-ID's queue id); waits up to `wait` s for Postfix to log it."""
        deadline = time.monotonic() + wait
        while True:
            log = self.maillog.read_text()
            queue = re.search(rf"(\w+): message-id=<{token}\.sonde@", log)
            if queue:
                match = re.search(rf"{queue.group(1)}: {pattern}", log)
                if match:
                    return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} line for {token} in {self.maillog}")
            time.sleep(0.01)

    def delay(self, token: str) -> float:
        """delay= of the probe mail's status=sent line (Postfix logs it in 10 ms steps)."""
        return float(self.queue_log(token, r"to=<.*?delay=([0-9.]+),.*status=sent").group(1))

    def client(self, token: str) -> str:
        """The client address Postfix logged for the probe mail: `[::1]` or `[127.0.0.1]`."""
        return self.queue_log(token, r"client=[^\[]*(\[[^\]]+\])").group(1)

    def held(self) -> int:
        hold = self.root / "postfix" / "spool" / "hold"
        return sum(1 for p in hold.rglob("*") if p.is_file())

    def stop(self) -> None:
        """SIGTERM both masters (each reaps its children) and wait for them to exit.

        A master whose start was reported as failed may still run: its pid file counts too.
        """
        for name, parts in _PID_FILES.items():
            if name not in self.pids:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    self.pids[name] = int(self.root.joinpath(*parts).read_text().split()[0])
        alive = []
        for name, pid in self.pids.items():
            if self._is_ours(pid, name):
                os.kill(pid, signal.SIGTERM)
                alive.append(pid)
        deadline = time.monotonic() + 10
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if Path(f"/proc/{pid}").exists()]
            time.sleep(0.05)
        self.pids.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def _is_ours(self, pid: int, name: str) -> bool:
        """A pid file can outlive its process: signal only this stack's live master."""
        try:
            exe = Path(os.readlink(f"/proc/{pid}/exe")).name
            if name == "dovecot":  # dovecot -c ROOT/dovecot/dovecot.conf
                started = Path(f"/proc/{pid}/cmdline").read_bytes()
                return exe == "dovecot" and str(self.root).encode() in started
            environ = Path(f"/proc/{pid}/environ").read_bytes()  # MAIL_CONFIG=ROOT/postfix/conf
            return exe == "master" and str(self.root).encode() in environ
        except OSError:
            return False


_PID_FILES = {
    "dovecot": ("dovecot", "run", "master.pid"),
    "postfix": ("postfix", "spool", "pid", "master.pid"),
}


def _tool(name: str) -> str:
    """A daemon or admin command: on PATH, or in /usr/sbin (not always on a user's PATH)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{name} is not installed: run .ci/install-system-deps (make test)")
    return path


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free right now (held together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start(attempts: int = 3) -> MailStack:
    """Build the directory, start Dovecot then Postfix, wait until every port answers.

    Raises RuntimeError with the daemons' logs when anything does not come up, after
    stopping whatever already started. The ports are free when picked but another process
    may take one before the daemons bind it; only that case is retried, with new ports.
    """
    for attempt in range(attempts):
        try:
            return _start_once()
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_once() -> MailStack:
    for tool in ("postfix", "dovecot", "postsuper", "postqueue"):
        _tool(tool)
    root = Path(tempfile.mkdtemp(prefix="sonde-mailstack-"))
    root.chmod(0o755)  # postfix, dovecot and mail must traverse it
    stack = MailStack(
        root=root,
        ports=dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True)),
        passwords={user: f"pw-{user}-{secrets.token_hex(8)}" for user in USERS},
        ca=trustme.CA(),
        ca_file=root / "tls" / "ca.pem",
    )
    try:
        _write_tls(stack)
        _write_dovecot(stack)
        _write_postfix(stack)
        _run([_tool("dovecot"), "-c", str(root / "dovecot" / "dovecot.conf")], root / "dovecot")
        stack.pids["dovecot"] = _read_pid(root / "dovecot" / "run" / "master.pid")
        _run([_tool("postfix"), "-c", str(root / "postfix" / "conf"), "start"], root / "postfix")
        stack.pids["postfix"] = _read_pid(root / "postfix" / "spool" / "pid" / "master.pid")
        _wait_for_ports(stack)
    except BaseException:
        logs = _log_tails(stack)
        stack.stop()
        if not logs:
            raise
        raise RuntimeError(f"the mail stack did not start:\n{logs}") from None
    return stack


def _write_tls(stack: MailStack) -> None:
    tls = stack.root / "tls"
    tls.mkdir()
    cert = stack.ca.issue_cert("localhost", *LISTEN)
    cert.private_key_pem.write_to_path(str(tls / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tls / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(tls / "cert.pem"), append=True)
    stack.ca.cert_pem.write_to_path(str(stack.ca_file))
    (tls / "key.pem").chmod(0o644)  # read by dovecot's login processes after privilege drop


def _write_dovecot(stack: MailStack) -> None:
    d = stack.root
    dov = d / "dovecot"
    for sub in ("run", "state"):
        (dov / sub).mkdir(parents=True)
    mail = d / "mail"
    mail.mkdir()
    os.chown(mail, 8, 8)  # the static userdb runs every mailbox as Debian's `mail` user
    passwd = dov / "passwd"
    passwd.write_text(
        "".join(f"{u}:{{PLAIN}}{pw}::::::nodelay=yes\n" for u, pw in stack.passwords.items())
    )
    os.chown(passwd, 0, grp.getgrnam("dovecot").gr_gid)
    passwd.chmod(0o640)
    p = stack.ports
    listeners = {
        "pop3": [("pop3", p["pop3"], False), ("pop3s", p["pop3s"], True)],
        "imap": [("imap", p["imap"], False), ("imaps", p["imaps"], True)],
    }
    lines = [
        "instance_name = sonde-mailstack",
        f"base_dir = {dov}/run",
        f"state_dir = {dov}/state",
        f"log_path = {dov}/dovecot.log",
        "protocols = pop3 imap lmtp",
        f"listen = {', '.join(LISTEN)}",
        "ssl = yes",
        f"ssl_cert = <{d}/tls/cert.pem",
        f"ssl_key = <{d}/tls/key.pem",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        "auth_username_format = %Ln",
        "auth_failure_delay = 0",
        "first_valid_uid = 8",
        "mail_location = maildir:~/Maildir",
        # Lock a POP3 mailbox for the whole session, as many POP3 servers do: probes that
        # polled a mailbox each on their own would wait for each other, then fail [IN-USE].
        "pop3_lock_session = yes",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN {passwd}",
        "}",
        "userdb {",
        "  driver = static",
        f"  args = uid=8 gid=8 home={mail}/%n",
        "}",
        # One wrong password would otherwise slow every later login from 127.0.0.1 for ~30 s.
        "service anvil {",
        "  unix_listener anvil-auth-penalty {",
        "    mode = 0",
        "  }",
        "}",
    ]
    for proto, items in listeners.items():
        lines.append(f"service {proto}-login {{")
        for name, port, ssl in items:
            lines += [f"  inet_listener {name} {{", f"    port = {port}"]
            if ssl:
                lines.append("    ssl = yes")
            lines.append("  }")
        lines.append("}")
    for service, socket_name in (("lmtp", "lmtp-postfix"), ("auth", "auth-postfix")):
        lines += [
            f"service {service} {{",
            f"  unix_listener {socket_name} {{",
            "    user = postfix",
            "    group = postfix",
            "    mode = 0600",
            "  }",
            "}",
        ]
    (dov / "dovecot.conf").write_text("\n".join(lines) + "\n")


def _write_postfix(stack: MailStack) -> None:
    d = stack.root
    pf = d / "postfix"
    conf = pf / "conf"
    conf.mkdir(parents=True)
    (pf / "spool").mkdir()  # must exist; data_directory must not (postfix creates it)
    mailboxes = ", ".join(f"{stack.address(u)}=ok" for u in USERS)
    (conf / "header_checks").write_text(
        f"/^Subject: {AUTHRES_SUBJECT}/ PREPEND {AUTHRES_HEADER}\n/^Subject: {HOLD_SUBJECT}/ HOLD\n"
    )
    main = {
        "compatibility_level": "3.6",
        "queue_directory": f"{pf}/spool",
        "data_directory": f"{pf}/data",
        "maillog_file": f"{pf}/maillog",
        "maillog_file_prefixes": str(d),
        "myhostname": "localhost",
        "mydomain": DOMAIN,
        "inet_interfaces": "127.0.0.1, [::1]",
        "inet_protocols": "ipv4, ipv6",
        "mydestination": "",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "smtpd_peername_lookup": "no",
        "virtual_mailbox_domains": DOMAIN,
        "virtual_mailbox_maps": f"inline:{{ {mailboxes} }}",
        "virtual_transport": f"lmtp:unix:{d}/dovecot/run/lmtp-postfix",
        "smtpd_tls_chain_files": f"{d}/tls/key.pem, {d}/tls/cert.pem",
        "smtpd_tls_security_level": "may",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": f"{d}/dovecot/run/auth-postfix",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_tls_auth_only": "no",
        "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
        "default_transport": "error:5.7.1 test stack does not relay",
        "relay_transport": "error:5.7.1 test stack does not relay",
        "smtpd_error_sleep_time": "0",
        "header_checks": f"regexp:{conf}/header_checks",
        "delay_logging_resolution_limit": "3",
    }
    (conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
    p = stack.ports
    authed = "-o smtpd_client_restrictions=permit_sasl_authenticated,reject"
    smtpd = {
        "smtp": "",
        "submission": f" -o smtpd_tls_security_level=encrypt -o smtpd_tls_auth_only=yes {authed}",
        "smtps": f" -o smtpd_tls_wrappermode=yes {authed}",
    }
    services = [
        *(
            f"{host}:{p[name]} inet n - n - - smtpd{options}"
            for host in ("127.0.0.1", "[::1]")
            for name, options in smtpd.items()
        ),
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "proxywrite unix - - n - 1 proxymap",
        "smtp unix - - n - - smtp",
        "relay unix - - n - - smtp",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "lmtp unix - - n - - lmtp",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    (conf / "master.cf").write_text("\n".join(services) + "\n")


def _run(command: list[str], logdir: Path) -> None:
    """Start a daemon with its output in a file (a pipe would never see EOF)."""
    with (logdir / "start.log").open("ab") as log:
        code = subprocess.call(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code}")


def _read_pid(path: Path) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().split()[0])
        time.sleep(0.02)
    raise RuntimeError(f"no pid file {path}")


def _wait_for_ports(stack: MailStack) -> None:
    deadline = time.monotonic() + 10
    for (name, port), ip in itertools.product(stack.ports.items(), LISTEN):
        while True:
            try:
                socket.create_connection((ip, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} port {port} does not answer on {ip}") from None
                time.sleep(0.05)


def _log_tails(stack: MailStack) -> str:
    out = []
    for path in (
        stack.root / "dovecot" / "start.log",
        stack.dovecot_log,
        stack.root / "postfix" / "start.log",
        stack.maillog,
    ):
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").strip()
            if text:
                out.append(f"--- {path.name}\n" + "\n".join(text.splitlines()[-20:]))
    return "\n".join(out)


@pytest.fixture(scope="session")
def mail_stack() -> Iterator[MailStack]:
    """The real mail stack, started once for the session; a failure to start fails loudly."""
    stack = start()
    try:
        yield stack
    finally:
        stack.stop()


if __name__ == "__main__":
    s = start()
    print(f"root={s.root}\nports={s.ports}\npasswords={s.passwords}\nca={s.ca_file}")
    try:
        input("Enter stops the stack\n")
    finally:
        s.stop()
