"""Rules on the chain as a whole: its bytes against the locks' limit, the presented order, each
signature link, the CA flags, and path validation to the anchor.

The verifier's verdict is one coarse error (``chain.untrusted``), so it is reported only when
no specific finding already explains a broken path (a bad signature, a missing intermediate, an
expired certificate, a CA flag on the server certificate, no subjectAltName): each problem maps
to exactly one finding. The verifier refuses SHA-1 signatures outright; that refusal alone is
left to ``cert.sha1``, any other verifier error is still reported. Host names are checked
against the subjectAltName by us; the verifier is given the first configured name the
certificate covers, else the first SAN entry it accepts (a wildcard as a name under it), so a
host-name mismatch does not hide other path problems; when it accepts none, a warning says the
path was not validated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .context import Context
from .report import CHAIN_LIMIT_BYTES, ERROR, INFO, WARNING, Finding
from .x509util import der, is_ca, issuer_label, san_covers, san_of, san_text, short_name, signed_by

# Findings that already say why path validation fails; the verifier's coarse error is dropped.
_EXPLAINS_PATH = {"chain.signature", "chain.incomplete", "chain.untrusted", "cert.expired",
                  "cert.not_yet_valid", "cert.leaf_ca", "anchor.not_ca", "host.no_san"}


def size(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    total, limit = ctx.chain_bytes(), CHAIN_LIMIT_BYTES
    if total > limit:
        yield ctx.finding("chain.size", ERROR, f"chain is {total:,} bytes of DER (root + "
                          f"intermediates + server), {total - limit:,} over the locks' "
                          f"{limit:,}-byte limit: NDE and MT20W locks fail every TLS call-in; use "
                          "RSA-2048 keys, shorter names or fewer intermediates")
    else:
        yield ctx.finding("chain.size", INFO, f"chain is {total:,} bytes of DER (root + "
                          f"intermediates + server), {limit - total:,} under the locks' "
                          f"{limit:,}-byte limit")


def order(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    if not [c for c in ctx.presented if c != ctx.anchor]:
        yield ctx.finding("chain.incomplete", ERROR, f"{ctx.set.chain_path.name} holds only the "
                          "anchor: put the server certificate first, then its intermediates")
        return
    on_path = [c for c in ctx.presented if c in ctx.path]
    expected = sorted(on_path, key=ctx.path.index)
    if on_path != expected or ctx.presented[0] != ctx.leaf:
        shown = ", ".join(short_name(c) for c in ctx.presented)
        wanted = ", ".join(short_name(c) for c in expected)
        yield ctx.finding("chain.order", ERROR, f"{ctx.set.chain_path.name} presents {shown}; "
                          "TLS needs the server certificate first, each followed by its issuer: "
                          f"{wanted}. Reorder the file (it is not fixed silently)")
    for cert in ctx.presented:
        copies = ctx.set.chain.count(cert)
        if copies > 1:
            yield ctx.finding("chain.duplicate", WARNING, f"{short_name(cert)} is {copies} times "
                              f"in {ctx.set.chain_path.name}; TLS sends every copy, adding "
                              f"{(copies - 1) * len(der(cert)):,} bytes to the chain: remove the "
                              "repeats", cert)
    for cert in ctx.extras:
        yield ctx.finding("chain.extra", WARNING, f"{short_name(cert)} in "
                          f"{ctx.set.chain_path.name} is not on the path from the server "
                          f"certificate to the anchor; it adds {len(der(cert)):,} bytes to the "
                          "chain: remove it", cert)


def links(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    for child, issuer in zip(ctx.path, ctx.path[1:]):
        ok = signed_by(child, issuer)
        if ok is False:
            yield ctx.finding("chain.signature", ERROR, f"the signature on {short_name(child)} "
                              f"does not verify with the key of {short_name(issuer)}: the "
                              "certificate is damaged or was not issued by that CA; get a fresh "
                              "copy", child)
        elif ok is None:
            yield ctx.finding("chain.signature", WARNING, f"the signature on {short_name(child)} "
                              "uses an algorithm this check cannot verify", child)
    if ctx.reached:
        return
    top = ctx.path[-1]
    if top.issuer == top.subject:
        yield ctx.finding("chain.untrusted", ERROR, f"the chain ends at {short_name(top)}, which "
                          f"is not this set's anchor {short_name(ctx.anchor)}: import the CA that "
                          "issued the chain as the anchor", top)
    else:
        yield ctx.finding("chain.incomplete", ERROR, f"nothing in {ctx.set.chain_path.name} or "
                          f"the anchor issued {short_name(top)}: its issuer "
                          f"{issuer_label(top)} is missing; add that intermediate certificate",
                          top)


def ca_flags(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    if not is_ca(ctx.anchor):
        yield ctx.finding("anchor.not_ca", ERROR, f"the anchor {short_name(ctx.anchor)} is not a "
                          "CA certificate (no basicConstraints CA:TRUE); locks install it as their "
                          "trust anchor, so it must be the CA that issued the chain "
                          "(partner_CA.der)", ctx.anchor)
    if ctx.leaf != ctx.anchor and is_ca(ctx.leaf):
        yield ctx.finding("cert.leaf_ca", ERROR, f"the server certificate {short_name(ctx.leaf)} "
                          "is marked as a CA (basicConstraints CA:TRUE); TLS clients refuse it as "
                          "a server certificate: reissue it without the CA flag", ctx.leaf)


def _verifier_subjects(ctx: Context) -> list:
    """Names to validate the path for: configured names the certificate covers, then its
    own SAN entries (a lock may use any of them; ``*.x.y`` as ``engage-check.x.y``)."""
    san = san_of(ctx.leaf)
    out = []
    for host in ctx.settings.host_names or []:
        if san_covers(san, host):
            try:
                out.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                out.append(x509.DNSName(host))
    for name in san.get_values_for_type(x509.DNSName):
        if name.startswith("*."):
            out.append(x509.DNSName("engage-check" + name[1:]))
        elif "*" not in name:
            out.append(x509.DNSName(name))
    out += [x509.IPAddress(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return out


def path_validation(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    if earlier & _EXPLAINS_PATH:
        return
    intermediates = [c for c in ctx.presented if c != ctx.leaf]
    for subject in _verifier_subjects(ctx):
        try:
            verifier = (PolicyBuilder().store(Store([ctx.anchor])).time(ctx.now)
                        .build_server_verifier(subject))
        except ValueError:
            continue  # a name the verifier cannot take (e.g. with '_'): try the next one
        try:
            verifier.verify(ctx.leaf, intermediates)
        except (VerificationError, ValueError, TypeError) as exc:
            reason = str(exc).split(" (encountered processing", 1)[0]
            if _refused_for_sha1(reason, earlier):
                return
            yield ctx.finding("chain.untrusted", ERROR, "path validation from the server "
                              f"certificate to the anchor failed for {subject.value}: {reason}",
                              ctx.leaf)
        return
    names = san_text(san_of(ctx.leaf))
    yield ctx.finding("chain.unchecked", WARNING, "path validation to the anchor could not run: "
                      f"the verifier accepts none of the server certificate's names ({names}; "
                      "names with '_' are refused), so the chain is unverified: reissue it with "
                      "the DNS name or IP address locks use (engage-console certs renew NAME "
                      "--host ...)", ctx.leaf)


def _refused_for_sha1(reason: str, earlier: frozenset[str]) -> bool:
    """Whether the verifier only refused a SHA-1 signature, which cert.sha1 reports."""
    text = reason.lower()
    return ("cert.sha1" in earlier and "forbidden signature algorithm" in text
            and "sha1" in text)
