import { BlockList, isIPv4, isIPv6 } from 'node:net';

// Which IP addresses an http step may connect to (docs/api.md#steps, the SSRF rule). A policy
// sees addresses only — after DNS resolution, never host names — so every spelling
// of an address (2130706433, 0177.0.0.1, 127.1, ::ffff:7f00:1, a name that resolves
// to it) meets the same check. The guarded dispatcher applies it to the very address
// it then connects to.

export interface AddressPolicy {
  /** Why `address` (a literal IPv4 or IPv6 address) may not be reached, or null if it may. */
  blockedReason(address: string): string | null;
}

type Rule = readonly [reason: string, network: string, prefix: number];

// IANA special-purpose registries (RFC 6890 and successors), the parts that name
// something other than the public Internet.
const IPV4_RULES: readonly Rule[] = [
  ['an unspecified ("this network") address', '0.0.0.0', 8],
  ['a private address', '10.0.0.0', 8],
  ['a carrier-grade NAT address', '100.64.0.0', 10],
  ['a loopback address', '127.0.0.0', 8],
  ['a link-local address', '169.254.0.0', 16],
  ['a private address', '172.16.0.0', 12],
  ['a reserved address', '192.0.0.0', 24],
  ['a private address', '192.168.0.0', 16],
  ['a reserved address', '198.18.0.0', 15],
  ['a multicast address', '224.0.0.0', 4],
  ['the broadcast address', '255.255.255.255', 32],
  ['a reserved address', '240.0.0.0', 4],
];

const IPV6_RULES: readonly Rule[] = [
  ['an unspecified address', '::', 128],
  ['a loopback address', '::1', 128],
  ['a reserved address', '100::', 64], // discard-only
  ['a local-use NAT64 address', '64:ff9b:1::', 48],
  ['a private (unique local) address', 'fc00::', 7],
  ['a link-local address', 'fe80::', 10],
  ['a site-local address', 'fec0::', 10],
  ['a multicast address', 'ff00::', 8],
];

function compile(rules: readonly Rule[], family: 'ipv4' | 'ipv6') {
  return rules.map(([reason, network, prefix]) => {
    const list = new BlockList();
    list.addSubnet(network, prefix, family);
    return { reason, list };
  });
}

const IPV4 = compile(IPV4_RULES, 'ipv4');
const IPV6 = compile(IPV6_RULES, 'ipv6');

/** The 16 bytes of an IPv6 address (zone id dropped), or null when it is not one. */
export function ipv6Bytes(text: string): Uint8Array | null {
  const address = text.replace(/%.*$/, '');
  if (!isIPv6(address)) return null;
  let head = address;
  const tailWords: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (dotted) {
    const octets = dotted[1]!.split('.').map(Number);
    tailWords.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
    head = address.slice(0, -dotted[1]!.length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const leftWords = words(left!);
  const rightWords = [...words(right ?? ''), ...tailWords];
  const missing = 8 - leftWords.length - rightWords.length;
  const all = right === undefined ? [...leftWords, ...tailWords] : [...leftWords, ...new Array<number>(missing).fill(0), ...rightWords];
  const bytes = new Uint8Array(16);
  all.forEach((word, i) => {
    bytes[i * 2] = word >> 8;
    bytes[i * 2 + 1] = word & 0xff;
  });
  return bytes;
}

const startsWith = (bytes: Uint8Array, prefix: readonly number[]) => prefix.every((b, i) => bytes[i] === b);

/**
 * The IPv4 address an IPv6 address carries, for the forms that reach that IPv4 host:
 * IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d (deprecated, RFC 4291),
 * NAT64 64:ff9b::a.b.c.d (RFC 6052) and 6to4 2002:AABB:CCDD:: (RFC 3056).
 */
export function embeddedIPv4(bytes: Uint8Array): string | null {
  const quad = (at: number) => Array.from(bytes.subarray(at, at + 4)).join('.');
  const zeros = (n: number) => new Array<number>(n).fill(0);
  if (startsWith(bytes, [...zeros(10), 0xff, 0xff])) return quad(12);
  if (startsWith(bytes, [0x00, 0x64, 0xff, 0x9b, ...zeros(8)])) return quad(12);
  if (startsWith(bytes, [0x20, 0x02])) return quad(2);
  // ::/96; its :: and ::1 never get here (they are IPv6's own unspecified and loopback).
  if (startsWith(bytes, zeros(12))) return quad(12);
  return null;
}

function ipv4Reason(address: string): string | null {
  return IPV4.find((rule) => rule.list.check(address, 'ipv4'))?.reason ?? null;
}

/** Blocks loopback, private, link-local, CGNAT, multicast, unspecified, broadcast and reserved addresses. */
export const privateNetworkPolicy: AddressPolicy = {
  blockedReason(address) {
    if (isIPv4(address)) return ipv4Reason(address);
    const bytes = ipv6Bytes(address);
    // Not a literal address: fail closed rather than guess what it would reach.
    if (!bytes) return 'not an IP address';
    const own = IPV6.find((rule) => rule.list.check(address.replace(/%.*$/, ''), 'ipv6'))?.reason;
    if (own) return own;
    const v4 = embeddedIPv4(bytes);
    const reason = v4 === null ? null : ipv4Reason(v4);
    return reason === null ? null : `${reason} (${v4}) in IPv6 form`;
  },
};

/** SKIPFLOW_ALLOW_PRIVATE_NETWORK=1: every address may be reached. */
export const allowAllPolicy: AddressPolicy = { blockedReason: () => null };
