"""Reading the server key file once per check, with the findings about the file itself.

The server key is read without OpenSSL's RSA consistency check (~35 ms for a 2048-bit key,
too slow for a check that runs as the cursor moves); activation builds the TLS context, which
loads the key fully before anything changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .report import ERROR, WARNING, Finding


def read_key(path: Path) -> tuple[object | None, list[Finding]]:
    """The private key in ``path`` (None when it cannot be used) and what is wrong with the
    file: unreadable, readable by others, encrypted, not a PEM key."""
    problems: list[Finding] = []
    try:
        data = path.read_bytes()
        mode = os.stat(path).st_mode & 0o777
    except OSError as exc:
        problems.append(Finding("key.unreadable", ERROR, f"cannot read {path.name}: "
                                f"{exc.strerror}; the TLS listener needs it"))
        return None, problems
    if mode & 0o077:
        problems.append(Finding("key.permissions", WARNING, f"{path.name} is readable by other "
                                f"users (mode {mode:04o}): run chmod 600 {path}"))
    try:
        return serialization.load_pem_private_key(data, None,
                                                  unsafe_skip_rsa_key_validation=True), problems
    except TypeError:
        problems.append(Finding("key.encrypted", ERROR, f"{path.name} is encrypted: the TLS "
                                "listener cannot use it unattended; import the set again with its "
                                "passphrase (engage-console certs import) to store the key "
                                "decrypted with mode 0600"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        problems.append(Finding("key.unreadable", ERROR, f"{path.name} is not a PEM private key "
                                f"({exc}): put the server certificate's key there"))
    return None, problems
