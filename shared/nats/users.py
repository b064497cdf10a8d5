"""NATS users and permissions, rendered from ``deploy/nats/permissions.toml``; TLS for development.

The permissions are data, written once: each service's user may publish only its own context's
events (``gw.*.<context>.>``) and snapshots, read the whole stream, run its own projections'
consumers, dead-letter their events and read replies on its own inbox prefix only
(:func:`inbox_prefix`); the admin user manages streams, replays and dead letters.
:func:`render_authorization` turns the file into nats-server's
``authorization { users: [...] }`` block, for the docker compose cluster (passwords left as
``$NATS_<USER>_PASSWORD`` environment references) and for the embedded stack and tests (with
real passwords), so both run with the same rules.

:func:`write_dev_certificates` makes a throw-away CA and server certificate with ``cryptography``
for development clusters; real deployments bring their own and never commit private keys.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import secrets
import ssl
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The permissions file of this checkout (deploy/ sits beside shared/).
PERMISSIONS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "permissions.toml"
#: Names the compose cluster and the dev certificates answer to.
DEV_HOSTNAMES = ("n1", "n2", "n3", "nats", "localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class UserPermissions:
    """One NATS user's allow-lists, placeholders filled for a namespace."""

    user: str
    context: str | None
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: The projections whose durable consumers and dead letters are the user's.
    projections: tuple[str, ...] = ()


def inbox_prefix(user: str) -> str:
    """The inbox prefix of ``user``'s connections (``_INBOX_visits``): replies to its requests come
    there, and its permissions let it subscribe there only.  The admin may use any."""
    return f"_INBOX_{user}"


def load_permissions(namespace: str | Sequence[str] = "gw", path: Path | None = None) -> dict[str, UserPermissions]:
    """Every user of the permissions file with its subjects for ``namespace`` (``gw`` in production).

    Several namespaces (the test suite gives each test its own on one server) merge their
    allow-lists; each namespace keeps its own context boundaries.
    """
    namespaces = [namespace] if isinstance(namespace, str) else list(namespace)
    raw = tomllib.loads((path or PERMISSIONS_FILE).read_text())
    roles: Mapping[str, Any] = raw.get("roles", {})
    users: dict[str, UserPermissions] = {}
    for name, spec in raw.get("users", {}).items():
        context = spec.get("context")
        projections: list[str] = list(spec.get("projections", []))
        publish: list[str] = []
        subscribe: list[str] = []
        for role in spec.get("roles", []):
            if role not in roles:
                raise ValueError(f"user {name}: unknown role {role!r}")
            grants = roles[role]
            if "{context}" in json.dumps(grants) and not context:
                raise ValueError(f"user {name}: role {role!r} needs a context")
            for ns in namespaces:
                values = {
                    "ns": ns,
                    "dlq_ns": f"{ns}dlq",
                    "events": f"{ns.upper()}_EVENTS",
                    "dlq": f"{ns.upper()}_DEADLETTER",
                    "kv": f"{ns}_snapshots",
                    "context": context or "",
                    "inbox": inbox_prefix(name),
                }
                publish += _expand(grants.get("publish", []), values, ns, projections)
                subscribe += _expand(grants.get("subscribe", []), values, ns, projections)
        users[name] = UserPermissions(name, context, _unique(publish), _unique(subscribe), tuple(projections))
    return users


def _expand(grants: Iterable[str], values: Mapping[str, str], ns: str, projections: Sequence[str]) -> list[str]:
    """Fill the placeholders; a grant naming ``{projection}`` or ``{durable}`` once per projection."""
    out: list[str] = []
    for grant in grants:
        if "{projection}" in grant or "{durable}" in grant:
            out += [grant.format(**values, projection=p, durable=f"{ns}_{p}") for p in projections]
        else:
            out.append(grant.format(**values))
    return out


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def password_variable(user: str) -> str:
    """The environment variable holding ``user``'s password in the compose cluster."""
    return f"NATS_{user.upper()}_PASSWORD"


def render_authorization(
    namespace: str | Sequence[str] = "gw",
    passwords: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> str:
    """nats-server's ``authorization`` block for every user in the permissions file.

    A user without an entry in ``passwords`` gets an environment reference
    (``$NATS_VISITS_PASSWORD``), which nats-server resolves when it reads the file: the compose
    config is committed without secrets.
    """
    lines = ["authorization {", "  users: ["]
    for user in load_permissions(namespace, path).values():
        if passwords and user.user in passwords:
            password = json.dumps(passwords[user.user])
        else:
            password = "$" + password_variable(user.user)
        perms = {
            "publish": {"allow": list(user.publish)},
            "subscribe": {"allow": list(user.subscribe)},
        }
        lines.append(f"    {{user: {json.dumps(user.user)}, password: {password},")
        lines.append(f"     permissions: {json.dumps(perms)}}}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def new_passwords(users: Iterable[str]) -> dict[str, str]:
    """A fresh random password per user (hex: safe inside a URL's user-info)."""
    return {u: secrets.token_hex(24) for u in users}


def nats_url_for(user: str, password: str, servers: Iterable[str]) -> str:
    """``GRIDWORK_NATS_URL`` for one user: every server with the user's credentials, comma separated."""
    out = []
    for server in servers:
        scheme, _, rest = server.partition("://")
        out.append(f"{scheme}://{user}:{password}@{rest}")
    return ",".join(out)


# ---------------------------------------------------------------------------------------- TLS


def tls_trust(ca_file: Path | str) -> ssl.SSLContext:
    """A client context that trusts only ``ca_file`` (the cluster's CA) and checks hostnames."""
    trust = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    trust.minimum_version = ssl.TLSVersion.TLSv1_2
    return trust


@dataclass(frozen=True)
class DevCertificates:
    """Paths of a development CA and the server certificate it signed."""

    ca: Path
    cert: Path
    key: Path


def write_dev_certificates(
    directory: Path, hostnames: Iterable[str] = DEV_HOSTNAMES, days: int = 365
) -> DevCertificates:
    """Make a throw-away CA and one server certificate for ``hostnames`` (DNS names or IPs).

    The CA's private key is not kept: to add a host, make a new set.  For development and tests
    only — a real deployment's keys come from its own PKI and are never committed.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gridwork development CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gridwork nats")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # the same certificate serves clients and the cluster routes (which dial each other)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = DevCertificates(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # the private key is owner-only from its first byte (a file that existed keeps its old mode
    # through O_CREAT, hence the fchmod before writing); nats-server reads it as its owner or root
    fd = os.open(paths.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.nats.users``: render the authorization block or make dev certificates."""
    parser = argparse.ArgumentParser(prog="python -m shared.nats.users")
    sub = parser.add_subparsers(dest="what", required=True)
    auth = sub.add_parser("authorization", help="print the authorization block (env-var passwords)")
    auth.add_argument("--namespace", default="gw")
    certs = sub.add_parser("certs", help="write a development CA and server certificate")
    certs.add_argument("directory", type=Path)
    certs.add_argument("--host", action="append", help="hostname or IP (repeatable; default the compose names)")
    args = parser.parse_args(argv)
    if args.what == "authorization":
        print(render_authorization(args.namespace), end="")
    else:
        made = write_dev_certificates(args.directory, args.host or DEV_HOSTNAMES)
        print(f"CA {made.ca}\ncertificate {made.cert}\nkey {made.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
