"""Server-side ``ssl.SSLContext`` objects for the TLS listener.

A context is built off to the side for each activation and swapped in by reference; a live
context is never mutated (a failed ``load_cert_chain`` would leave it broken).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import CertificateError

_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class _KeyEncrypted(Exception):
    """Raised by the password callback, so that OpenSSL never prompts on a terminal."""


def _refuse_password():
    raise _KeyEncrypted


def build_server_context(chain_path: Path, key_path: Path,
                         min_version: str = "1.2") -> ssl.SSLContext:
    """A fresh context presenting ``chain_path`` with ``key_path``; CertificateError if the
    chain and key cannot be loaded together."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if min_version in ("1.0", "1.1"):
        # Old lock firmware may need these; OpenSSL's default security level refuses them.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = _VERSIONS[min_version]
    ctx.options |= ssl.OP_NO_COMPRESSION
    try:
        ctx.load_cert_chain(str(chain_path), str(key_path), password=_refuse_password)
    except _KeyEncrypted:
        raise CertificateError(
            f"{key_path} is encrypted: the TLS listener cannot ask for a passphrase; import the "
            "set again with its passphrase (engage-console certs import NAME FILES...), which "
            "stores the key decrypted with mode 0600") from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            reason = "the server key does not match the server certificate"
        raise CertificateError(f"cannot load {chain_path.name} with {key_path.name}: {reason}") \
            from None
    except OSError as exc:
        raise CertificateError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return ctx


def require_client_certificates(ctx: ssl.SSLContext, client_ca_file: str) -> None:
    """Make a context (not yet live) require client certificates issued by this CA file."""
    try:
        ctx.load_verify_locations(cafile=client_ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(f"client CA file {client_ca_file}: {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
