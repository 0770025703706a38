"""``engage-console simulate``: a fleet of simulated locks calling in to a host."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from server.errors import ConfigError
from server.host import load_site_key
from server.simfleet import (Refetches, assign_sources, by_chain, delivered_anchor, load_anchors,
                             make_fleet, on_loopback, refetch, run_fleet, save_anchors)

from .common import EXIT_FINDINGS, EXIT_OK, print_json


def register(sub, parent) -> None:
    p = sub.add_parser(
        "simulate", parents=[parent],
        help="run simulated locks against a host: each fetches and checks the anchor with the "
             "site key, then calls in over TLS (PUT Config, GET db, POST audit)")
    p.add_argument("--locks", type=int, default=10, metavar="N", help="how many locks (10)")
    p.add_argument("--interval", type=float, default=10.0, metavar="S",
                   help="seconds between a lock's call-ins (10; 0: back to back)")
    p.add_argument("--duration", type=float, default=30.0, metavar="D",
                   help="seconds to run (30)")
    p.add_argument("--url", metavar="URL",
                   help="the host's plain HTTP address, e.g. http://10.44.68.128 (default: "
                        "http://127.0.0.1 with the --http-port setting); TLS uses --tls-port")
    p.add_argument("--workers", type=int, default=8, metavar="N",
                   help="call-ins in flight at once (8)")
    p.add_argument("--seed", type=int, help="repeatable serials and events")
    p.add_argument("--fleet-file", metavar="FILE",
                   help="keep the anchor each lock installed here between runs (a lock not in "
                        "it commissions: fetches the active anchor); with --seed, the same locks")
    p.add_argument("--refetch-fraction", type=float, default=0.0, metavar="F",
                   help="share of the locks that re-fetch the anchor at start (0 to 1, default "
                        "0); the others keep the one they hold and fail with unknown CA when "
                        "the host's chain is to another anchor")
    p.add_argument("--refetch-during", type=float, default=0.0, metavar="F",
                   help="share of the locks that re-fetch the anchor at a random moment during "
                        "the run (0 to 1), as in a migration; the summary counts handshakes by "
                        "chain: new (the anchor /current delivered at start) and old")
    p.add_argument("--same-address", action="store_true",
                   help="all locks connect from one address (as behind NAT); by default each "
                        "connects from its own loopback address 127.0.0.2, 127.0.0.3, ...")
    p.add_argument("--json", action="store_true", help="the summary as JSON")
    p.set_defaults(func=simulate)


def simulate(args, settings) -> int:
    for name in ("locks", "workers"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be at least 1")
    if args.interval < 0 or args.duration <= 0:
        raise ConfigError("--interval must be 0 or more and --duration more than 0")
    url = urlsplit(args.url or f"http://127.0.0.1:{settings.http_port}")
    if url.scheme != "http" or not url.hostname:
        raise ConfigError(f"--url {args.url!r}: expected http://HOST[:PORT] (locks fetch the "
                          "anchor over plain HTTP)")
    site_key, _ = load_site_key(settings)
    fleet = make_fleet(args.locks, url.hostname, url.port or 80, settings.tls_port,
                       site_key.hmac_key(), seed=args.seed)
    if on_loopback(url.hostname):
        assign_sources(fleet, same=args.same_address)
    fleet_file = Path(args.fleet_file) if args.fleet_file else None
    if fleet_file is not None:
        load_anchors(fleet_file, fleet)
    refetched = refetch(fleet, args.refetch_fraction, args.seed)
    new = delivered_anchor(url.hostname, url.port or 80)
    during = Refetches(fleet, args.refetch_during, args.duration, args.seed).start()
    try:
        summary = run_fleet(fleet, args.interval, args.duration, workers=args.workers)
    finally:
        during.stop()
    if fleet_file is not None:
        save_anchors(fleet_file, fleet)
    chains = by_chain(summary.chains, new)
    if args.json:
        print_json({**summary.to_dict(), "refetched": refetched, "handshakes_by_chain": chains,
                    "refetched_during": during.done, "refetch_failed": dict(during.failed)})
    else:
        print(f"{args.locks} simulated locks against http://{url.hostname}:{url.port or 80} "
              f"(TLS port {settings.tls_port})")
        print(summary.text())
        print(f"handshakes by chain: new {chains['new']}, old {chains['old']}"
              + (f" (new: anchor {new[:16]}… that /current delivers)" if new else ""))
        if during.plan:
            print(f"re-fetched during the run: {len(during.done)} of {len(during.plan)} locks"
                  + "".join(f"; {reason}: {n}" for reason, n in during.failed.items()))
    failed = summary.failed or during.failed
    return EXIT_OK if summary.total and not failed else EXIT_FINDINGS
