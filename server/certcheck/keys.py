"""Rules on keys: the server key file, key sizes and types against what the locks accept, and
whether the server key belongs to the server certificate."""

from __future__ import annotations

from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric import rsa

from .context import Context
from .report import ERROR, WARNING, Finding
from .x509util import key_label, short_name, spki

KEY_LIMIT_BITS = 2048


def key_file(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    """What reading the server key file found (it is read once, with the context)."""
    yield from ctx.key_problems


def sizes(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    for cert in ctx.all_certs():
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size > KEY_LIMIT_BITS:
                yield ctx.finding("key.size", ERROR, f"{short_name(cert)} has an RSA "
                                  f"{key.key_size}-bit key; the locks accept at most "
                                  f"{KEY_LIMIT_BITS} bits: reissue it with an RSA-2048 key", cert)
        else:
            label = key_label(key)
            article = "an" if label[:1] in "AEIOU" else "a"  # an EC, an Ed25519, a DSA
            yield ctx.finding("key.type", WARNING, f"{short_name(cert)} has {article} {label} "
                              "key; Allegion documents RSA only, so lock support is unknown: test "
                              "with one lock before rolling it out", cert)


def match(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    if ctx.key is None:
        return
    mine = spki(ctx.key.public_key())
    if mine != spki(ctx.leaf.public_key()):
        owner = next((c for c in ctx.all_certs() if spki(c.public_key()) == mine), None)
        yield ctx.finding("key.mismatch", ERROR, f"{ctx.set.key_path.name} does not match the "
                          f"server certificate {short_name(ctx.leaf)}"
                          + (f" (it is the key of {short_name(owner)})" if owner else "")
                          + ": the TLS listener cannot present it; use the key this certificate "
                          "was issued for", ctx.leaf)
