"""Which chain a new TLS connection gets during a migration: the rule, in one place.

For the client's address, from the host's evidence (``Trust.evidence``):

1. A retry: the last handshake from this address failed with one chain (the lock rejected it:
   unknown CA, bad certificate, closed after the handshake) and that connection was not itself
   a retry: this connection gets the other chain, once. A wrong guess costs one call-in.
2. Several locks seen at the address (NAT): the new chain only when every one of them is proven
   on it, else the old chain ("address shared by N locks").
3. Otherwise the newest fact wins: the address's newest anchor download or the lock's newest
   handshake proof, whichever is later (an address that fetched both anchors: the one it
   fetched last). No fact: the old chain.

Each choice returns a note for the request log when the rule had to break a tie or retry
("" otherwise, so a migration adds no log line per call-in).
"""

from __future__ import annotations

import collections
import threading

from ..devices.trust import MAX_ADDRESSES, Evidence, Trust

REJECTIONS = ("unknown CA", "rejected our")  # handshake failures that say "not this chain"


def chain_name(new: bool) -> str:
    return "new" if new else "old"


def rule(evidence: Evidence, old: str, new: str) -> tuple[bool, str]:
    """Rules 2 and 3 above: (serve the new chain, note)."""
    serials = evidence.serials
    if len(serials) > 1:
        proven = sum(evidence.trusted.get(s, ("",))[0] == new for s in serials)
        if proven == len(serials):
            return True, ""
        return False, f"served old chain: address shared by {len(serials)} locks"
    facts = list(evidence.trusted.values())
    if evidence.fetch is not None:
        facts.append(evidence.fetch[:2])
    if not facts:
        return False, ""
    use_new = max(facts, key=lambda fact: fact[1])[0] == new
    fetch = evidence.fetch
    if fetch is not None and {fetch[0], fetch[2]} == {old, new}:
        last = chain_name(fetch[0] == new)
        return use_new, (f"served {chain_name(use_new)} chain: address fetched both anchors, "
                         f"the {last} one last")
    return use_new, ""


class ChainChoice:
    """The choice per connection, and the memory of what each address was served last."""

    def __init__(self, trust: Trust, old: str, new: str):
        self.trust, self.old, self.new = trust, old, new
        self._served: collections.OrderedDict[str, tuple[bool, bool]] = \
            collections.OrderedDict()  # address -> (new chain, was a retry)
        self._retry: dict[str, bool] = {}  # address -> the chain its next connection gets
        self._lock = threading.Lock()

    def choose(self, address: str) -> tuple[bool, str]:
        """(serve the new chain, note) for a new connection from ``address``."""
        with self._lock:
            retry = self._retry.pop(address, None)
        if retry is not None:
            note = (f"served {chain_name(retry)} chain once: the last handshake from this "
                    f"address failed with the {chain_name(not retry)} one")
            use_new = retry
        else:
            use_new, note = rule(self.trust.evidence(address), self.old, self.new)
        with self._lock:
            self._served[address] = (use_new, retry is not None)
            self._served.move_to_end(address)
            if len(self._served) > MAX_ADDRESSES:
                self._served.popitem(last=False)
        return use_new, note

    def failed(self, address: str, reason: str) -> None:
        """A handshake from ``address`` failed: if the lock rejected the chain it was chosen
        by the rule, its next connection gets the other one."""
        if not any(word in reason for word in REJECTIONS):
            return
        with self._lock:
            served = self._served.get(address)
            if served is not None and not served[1]:
                self._retry[address] = not served[0]
                if len(self._retry) > MAX_ADDRESSES:
                    self._retry.pop(next(iter(self._retry)))
