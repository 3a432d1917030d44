"""Go's names for TLS cipher suites and curves, and the OpenSSL names that honour them.

Only what Go's `tls.CipherSuites()` lists is accepted by exporter-toolkit; of those, every
TLS 1.2 suite has an OpenSSL twin. Go ignores TLS 1.3 suites in this list (TLS 1.3 suites are
not configurable there), and so does OpenSSL's cipher string, so they are accepted and mean
nothing, as in Go. Go's insecure suites (RC4, 3DES, CBC-SHA256) are refused by name.
"""

from __future__ import annotations

TLS12_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_SUITES = frozenset(
    ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
)

CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1"}
"""The curves Python's ssl can restrict a server to (one at a time, with set_ecdh_curve)."""
GO_ONLY_CURVES = frozenset(("X25519",))


def openssl_ciphers(go_names: tuple[str, ...]) -> list[str]:
    """The OpenSSL names of the TLS 1.2 suites among `go_names`, in order; ValueError names the
    first suite Go would not accept either."""
    out = []
    for name in go_names:
        if name in TLS12_SUITES:
            out.append(TLS12_SUITES[name])
        elif name not in TLS13_SUITES:
            raise ValueError(
                f"{name!r} is not a cipher suite exporter-toolkit accepts (Go's secure TLS 1.2 "
                "and 1.3 suites, named as in Go's crypto/tls)"
            )
    return out
