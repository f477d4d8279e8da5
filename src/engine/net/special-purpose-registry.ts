// The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, RFC 8190 and
// the RFCs that added entries since), entry by entry, with their "Globally
// Reachable" column. An entry marked N/A (deprecated: 6to4 relays, Teredo, 6to4,
// ORCHID) counts as not reachable. Sources, as of 2025-10:
//   https://www.iana.org/assignments/iana-ipv4-special-registry/
//   https://www.iana.org/assignments/iana-ipv6-special-registry/
// The most specific entry that contains an address decides (192.0.0.9/32 is
// reachable inside the unreachable 192.0.0.0/24). When IANA adds an entry, add it
// here and a row to test/ssrf.test.ts.

export interface RegistryEntry {
  readonly prefix: string;
  /** Why an address in the block is refused, phrased for an error message. */
  readonly name: string;
  readonly global: boolean;
}

export const IPV4_SPECIAL_PURPOSE: readonly RegistryEntry[] = [
  { prefix: '0.0.0.0/8', name: 'an unspecified ("this network") address', global: false },
  { prefix: '0.0.0.0/32', name: 'the unspecified ("this host on this network") address', global: false },
  { prefix: '10.0.0.0/8', name: 'a private address', global: false },
  { prefix: '100.64.0.0/10', name: 'a carrier-grade NAT (shared) address', global: false },
  { prefix: '127.0.0.0/8', name: 'a loopback address', global: false },
  { prefix: '169.254.0.0/16', name: 'a link-local address', global: false },
  { prefix: '172.16.0.0/12', name: 'a private address', global: false },
  { prefix: '192.0.0.0/24', name: 'a reserved address (IETF protocol assignments)', global: false },
  { prefix: '192.0.0.0/29', name: 'a reserved address (IPv4 service continuity, DS-Lite)', global: false },
  { prefix: '192.0.0.8/32', name: 'a reserved address (the IPv4 dummy address)', global: false },
  { prefix: '192.0.0.9/32', name: 'Port Control Protocol anycast', global: true },
  { prefix: '192.0.0.10/32', name: 'TURN anycast', global: true },
  { prefix: '192.0.0.170/32', name: 'a reserved address (NAT64/DNS64 discovery)', global: false },
  { prefix: '192.0.0.171/32', name: 'a reserved address (NAT64/DNS64 discovery)', global: false },
  { prefix: '192.0.2.0/24', name: 'a documentation address (TEST-NET-1)', global: false },
  { prefix: '192.31.196.0/24', name: 'AS112-v4', global: true },
  { prefix: '192.52.193.0/24', name: 'AMT', global: true },
  { prefix: '192.88.99.0/24', name: 'a deprecated 6to4 relay anycast address', global: false },
  { prefix: '192.168.0.0/16', name: 'a private address', global: false },
  { prefix: '192.175.48.0/24', name: 'AS112 direct delegation', global: true },
  { prefix: '198.18.0.0/15', name: 'a benchmarking address', global: false },
  { prefix: '198.51.100.0/24', name: 'a documentation address (TEST-NET-2)', global: false },
  { prefix: '203.0.113.0/24', name: 'a documentation address (TEST-NET-3)', global: false },
  { prefix: '240.0.0.0/4', name: 'a reserved address', global: false },
  { prefix: '255.255.255.255/32', name: 'the broadcast address', global: false },
];

export const IPV6_SPECIAL_PURPOSE: readonly RegistryEntry[] = [
  { prefix: '::1/128', name: 'a loopback address', global: false },
  { prefix: '::/128', name: 'an unspecified address', global: false },
  { prefix: '::ffff:0:0/96', name: 'an IPv4-mapped address', global: false },
  { prefix: '64:ff9b::/96', name: 'NAT64 (well-known prefix)', global: true },
  { prefix: '64:ff9b:1::/48', name: 'a local-use NAT64 address', global: false },
  { prefix: '100::/64', name: 'a discard-only address', global: false },
  { prefix: '100:0:0:1::/64', name: 'a dummy IPv6 prefix address', global: false },
  { prefix: '2001::/23', name: 'a reserved address (IETF protocol assignments)', global: false },
  { prefix: '2001::/32', name: 'a Teredo address', global: false },
  { prefix: '2001:1::1/128', name: 'Port Control Protocol anycast', global: true },
  { prefix: '2001:1::2/128', name: 'TURN anycast', global: true },
  { prefix: '2001:1::3/128', name: 'DNS-SD service registration protocol anycast', global: true },
  { prefix: '2001:2::/48', name: 'a benchmarking address', global: false },
  { prefix: '2001:3::/32', name: 'AMT', global: true },
  { prefix: '2001:4:112::/48', name: 'AS112-v6', global: true },
  { prefix: '2001:10::/28', name: 'a deprecated ORCHID address', global: false },
  { prefix: '2001:20::/28', name: 'ORCHIDv2', global: true },
  { prefix: '2001:30::/28', name: 'drone remote ID entity tags', global: true },
  { prefix: '2001:db8::/32', name: 'a documentation address', global: false },
  { prefix: '2002::/16', name: 'a 6to4 address', global: false },
  { prefix: '2620:4f:8000::/48', name: 'AS112 direct delegation', global: true },
  { prefix: '3fff::/20', name: 'a documentation address', global: false },
  { prefix: '5f00::/16', name: 'a segment routing (SRv6) SID', global: false },
  { prefix: 'fc00::/7', name: 'a private (unique local) address', global: false },
  { prefix: 'fe80::/10', name: 'a link-local address', global: false },
];

// Not in the special-purpose registries but never a public unicast destination:
// multicast (its own registries), the deprecated IPv6 site-local block, and IPv6
// space outside global unicast 2000::/3 (unassigned, or the deprecated
// IPv4-compatible ::/96). Consulted only when no registry entry matched.
export const IPV4_NOT_PUBLIC: readonly RegistryEntry[] = [{ prefix: '224.0.0.0/4', name: 'a multicast address', global: false }];

export const IPV6_NOT_PUBLIC: readonly RegistryEntry[] = [
  { prefix: 'ff00::/8', name: 'a multicast address', global: false },
  { prefix: 'fec0::/10', name: 'a site-local address', global: false },
];

export const IPV6_GLOBAL_UNICAST = '2000::/3';
