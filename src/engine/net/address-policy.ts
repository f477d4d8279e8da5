import { isIPv4, isIPv6 } from 'node:net';
import {
  IPV4_NOT_PUBLIC,
  IPV4_SPECIAL_PURPOSE,
  IPV6_GLOBAL_UNICAST,
  IPV6_NOT_PUBLIC,
  IPV6_SPECIAL_PURPOSE,
  type RegistryEntry,
} from './special-purpose-registry.js';

// Which IP addresses an outbound request (an http step; later notification
// deliveries) may connect to: the SSRF rule. A policy
// sees addresses only — after DNS resolution, never host names — so every spelling
// of an address (2130706433, 0177.0.0.1, 127.1, ::ffff:7f00:1, a name that resolves
// to it) meets the same check. The guarded dispatcher applies it to the very address
// it then connects to.

export interface AddressPolicy {
  /** Why `address` (a literal IPv4 or IPv6 address) may not be reached, or null if it may. */
  blockedReason(address: string): string | null;
}

interface Block {
  readonly bytes: Uint8Array;
  readonly bits: number;
  readonly entry: RegistryEntry;
}

function ipv4Bytes(text: string): Uint8Array | null {
  return isIPv4(text) ? Uint8Array.from(text.split('.').map(Number)) : null;
}

function compile(entries: readonly RegistryEntry[]): Block[] {
  return entries.map((entry) => {
    const [network, bits] = entry.prefix.split('/') as [string, string];
    const bytes = ipv4Bytes(network) ?? ipv6Bytes(network);
    if (!bytes) throw new Error(`bad prefix ${entry.prefix}`);
    return { bytes, bits: Number(bits), entry };
  });
}

function contains(block: Block, address: Uint8Array): boolean {
  if (block.bytes.length !== address.length) return false;
  const whole = block.bits >> 3;
  for (let i = 0; i < whole; i++) if (block.bytes[i] !== address[i]) return false;
  const rest = block.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (block.bytes[whole]! & mask) === (address[whole]! & mask);
}

/** The most specific block that contains `address`: it decides, as in the registries. */
function mostSpecific(blocks: readonly Block[], address: Uint8Array): RegistryEntry | null {
  let best: Block | null = null;
  for (const block of blocks) if (contains(block, address) && (!best || block.bits > best.bits)) best = block;
  return best?.entry ?? null;
}

const IPV4 = compile(IPV4_SPECIAL_PURPOSE);
const IPV4_EXTRA = compile(IPV4_NOT_PUBLIC);
const IPV6 = compile(IPV6_SPECIAL_PURPOSE);
const IPV6_EXTRA = compile(IPV6_NOT_PUBLIC);
const GLOBAL_UNICAST = compile([{ prefix: IPV6_GLOBAL_UNICAST, name: 'global unicast', global: true }]);

/** Why a block refuses an address: a registry entry decides when one matches, else the extra rules. */
function decide(registry: readonly Block[], extra: readonly Block[], address: Uint8Array): string | null | undefined {
  const entry = mostSpecific(registry, address);
  if (entry) return entry.global ? null : entry.name;
  return mostSpecific(extra, address)?.name;
}

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
  // ::/96, except :: and ::1, which are IPv6's own unspecified and loopback addresses.
  if (startsWith(bytes, zeros(12)) && !startsWith(bytes, zeros(15))) return quad(12);
  return null;
}

function ipv4Reason(address: string): string | null {
  const bytes = ipv4Bytes(address);
  return bytes ? (decide(IPV4, IPV4_EXTRA, bytes) ?? null) : 'not an IP address';
}

const isMapped = (bytes: Uint8Array) => startsWith(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function ipv6Reason(bytes: Uint8Array): string | null {
  // An IPv6 form that reaches an IPv4 host is refused when that host is. IPv4-mapped
  // (::ffff:a.b.c.d) is judged by its IPv4 address alone: the registry lists the
  // prefix as not reachable as an IPv6 destination, but a socket given such an
  // address talks IPv4 to a.b.c.d, so that is the address that matters.
  const v4 = embeddedIPv4(bytes);
  const carried = v4 === null ? null : ipv4Reason(v4);
  if (carried !== null) return `${carried} (${v4}) in IPv6 form`;
  if (isMapped(bytes)) return null;
  const decided = decide(IPV6, IPV6_EXTRA, bytes);
  if (decided !== undefined) return decided;
  return contains(GLOBAL_UNICAST[0]!, bytes) ? null : 'an address outside IPv6 global unicast space (2000::/3)';
}

/** Blocks every address the special-purpose registries do not mark globally reachable, multicast, and unassigned IPv6 space. */
export const privateNetworkPolicy: AddressPolicy = {
  blockedReason(address) {
    if (isIPv4(address)) return ipv4Reason(address);
    const bytes = ipv6Bytes(address);
    // Not a literal address: fail closed rather than guess what it would reach.
    return bytes ? ipv6Reason(bytes) : 'not an IP address';
  },
};

/** SKIPFLOW_ALLOW_PRIVATE_NETWORK=1: every address may be reached. */
export const allowAllPolicy: AddressPolicy = { blockedReason: () => null };

/** The policy the operator chose: every outbound request of the engine uses this one. */
export function addressPolicy(allowPrivateNetwork: boolean): AddressPolicy {
  return allowPrivateNetwork ? allowAllPolicy : privateNetworkPolicy;
}
