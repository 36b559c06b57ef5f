"""Collectives between chips, costed from a profile's interconnect figures.

Ring formulas (N ranks, message S bytes per rank, per-rank link bandwidth BW per direction, per-step latency a):
  all-reduce       2 (N - 1)/N * S / BW + 2 (N - 1) a
  all-gather       (N - 1)/N * S / BW + (N - 1) a        (reduce-scatter the same)
  all-to-all       each rank sends (N - 1)/N of its S bytes and receives as much: (N - 1)/N * S / BW + a
  point-to-point   S / BW + a
BW is the link's peak times the collective efficiency factor. A group that fits in one scale-up domain uses the
scale-up link; a larger group sends the share of its traffic that leaves the domain over the scale-out network,
and the slower of the two paths sets the time (all-to-all), or the whole ring runs at the scale-out rate
(all-reduce, whose ring crosses the network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Links", "all_reduce_s", "all_to_all_s", "expert_all_to_all_s", "p2p_s"]


@dataclass(frozen=True)
class Links:
    scaleup_bytes_s: float
    scaleup_latency_s: float
    domain: int
    scaleout_bytes_s: float
    scaleout_latency_s: float

    @classmethod
    def of(cls, profile, collective_efficiency: float) -> "Links":
        return cls(
            profile.link("scaleup_gbs") * 1e9 * collective_efficiency,
            profile.link("scaleup_latency_us") * 1e-6,
            int(profile.link("scaleup_domain")),
            profile.link("scaleout_gbs") * 1e9 * collective_efficiency,
            profile.link("scaleout_latency_us") * 1e-6,
        )

    def ring(self, ranks: int) -> tuple[float, float]:
        """(bandwidth, latency) of a ring over `ranks` chips."""
        if ranks <= self.domain:
            return self.scaleup_bytes_s, self.scaleup_latency_s
        return self.scaleout_bytes_s, self.scaleout_latency_s


def all_reduce_s(links: Links, ranks: int, message_bytes: float) -> float:
    if ranks <= 1 or message_bytes <= 0:
        return 0.0
    bandwidth, latency = links.ring(ranks)
    return 2 * (ranks - 1) / ranks * message_bytes / bandwidth + 2 * (ranks - 1) * latency


def all_to_all_s(links: Links, ranks: int, message_bytes: float) -> float:
    """One all-to-all in which every rank holds `message_bytes` destined evenly for all ranks (itself included)."""
    if ranks <= 1 or message_bytes <= 0:
        return 0.0
    leaving = (ranks - 1) / ranks * message_bytes
    if ranks <= links.domain:
        return leaving / links.scaleup_bytes_s + links.scaleup_latency_s
    remote_share = (ranks - links.domain) / (ranks - 1)
    inside = leaving * (1 - remote_share) / links.scaleup_bytes_s
    outside = leaving * remote_share / links.scaleout_bytes_s
    return max(inside, outside) + links.scaleout_latency_s


def expert_all_to_all_s(
    links: Links,
    ranks: int,
    tokens: float,
    copies: int,
    token_bytes: float,
    dedup_by_domain: bool,
    domain_limit: int = 0,
) -> float:
    """One expert-parallel dispatch (or combine) from one rank: each of its `tokens` tokens goes to `copies`
    experts spread evenly over `ranks` ranks.

    Copies for the rank's own domain cross the scale-up link once. Copies for other domains cross the network:
    one per copy (decode's low-latency kernels send each copy straight to its rank), or, with
    `dedup_by_domain` (prefill's normal kernels, DeepEP-style), one per distinct remote domain the token
    touches -- expected D (1 - (1 - 1/D)^copies) domains for D domains, at most `domain_limit` where routing is
    group-limited -- and the destination domain forwards over its scale-up links."""
    if ranks <= 1 or tokens <= 0:
        return 0.0
    domains = max(1, math.ceil(ranks / links.domain))
    local_ranks = min(ranks, links.domain)
    remote_share = (ranks - local_ranks) / ranks
    if dedup_by_domain and domains > 1:
        touched = domains * (1 - (1 - 1 / domains) ** copies)
        if domain_limit:
            touched = min(touched, domain_limit)
        remote_copies = touched * (domains - 1) / domains
    else:
        remote_copies = copies * remote_share
    up_copies = copies * (local_ranks - 1) / ranks + (copies * remote_share if dedup_by_domain else 0.0)
    inside = tokens * up_copies * token_bytes / links.scaleup_bytes_s
    outside = tokens * remote_copies * token_bytes / links.scaleout_bytes_s
    latency = links.scaleout_latency_s if domains > 1 else links.scaleup_latency_s
    return max(inside, outside) + latency


def p2p_s(links: Links, crosses_domain: bool, message_bytes: float) -> float:
    if message_bytes <= 0:
        return 0.0
    if crosses_domain:
        return message_bytes / links.scaleout_bytes_s + links.scaleout_latency_s
    return message_bytes / links.scaleup_bytes_s + links.scaleup_latency_s
