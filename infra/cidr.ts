/**
 * Address ranges as the config rules and the policy pack read them: parsed by
 * ipaddr.js, never compared as strings, so `0.0.0.0/1` + `128.0.0.0/1`,
 * `0::/0` or a /8 count as what they admit.
 *
 * "Open to the world": the public addresses a port admits, summed over the
 * ranges that admit it, are more than a /16 holds for IPv4 (65,536) or a /48
 * for IPv6 (one site's allocation). A VPN, an office or a runner pool fits
 * under that; anything wider is treated as everyone. Private, loopback,
 * link-local, carrier-grade NAT (IPv4) and unique-local (IPv6) ranges are not
 * public; every other range counts as public, reserved ones included (that
 * only makes the rule stricter).
 */
import ipaddr from 'ipaddr.js';

export const WORLD_OPEN_PREFIX = { ipv4: 16, ipv6: 48 } as const;
type Family = keyof typeof WORLD_OPEN_PREFIX;
const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

const NOT_PUBLIC: Record<Family, Array<[ipaddr.IPv4 | ipaddr.IPv6, number]>> = {
  ipv4: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '169.254.0.0/16', '100.64.0.0/10'].map((r) => ipaddr.parseCIDR(r)),
  ipv6: ['fc00::/7', 'fe80::/10', '::1/128'].map((r) => ipaddr.parseCIDR(r)),
};

export type Cidr = { text: string; family: Family; prefix: number; size: bigint; isPublic: boolean };

const within = (address: ipaddr.IPv4 | ipaddr.IPv6, prefix: number, [network, bits]: [ipaddr.IPv4 | ipaddr.IPv6, number]) =>
  address.kind() === network.kind() && prefix >= bits && address.match(network, bits);

/** The range, or what is wrong with the text (a message that names it and shows the right form). */
export function parseCidr(text: string): Cidr | string {
  const example = 'an address range such as 203.0.113.7/32 or 2001:db8::/48';
  if (typeof text !== 'string' || !ipaddr.isValidCIDR(text)) return `"${text}" is not ${example}`;
  const [address, prefix] = ipaddr.parseCIDR(text);
  const family = address.kind();
  // ipaddr.js also reads 10.1/8 and 0x0a.0.0.1/32 as IPv4; AWS and readers expect four decimal parts.
  if (family === 'ipv4' && !ipaddr.IPv4.isValidCIDRFourPartDecimal(text)) return `"${text}" is not ${example} (IPv4 needs four decimal parts)`;
  const network = family === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  if (network.toNormalizedString() !== address.toNormalizedString()) {
    return `"${text}" has bits set past its /${prefix}: write ${network.toString()}/${prefix} for the range, or ${address.toString()}/${BITS[family]} for the one address`;
  }
  const isPublic = !NOT_PUBLIC[family].some((range) => within(address, prefix, range));
  return { text, family, prefix, size: 1n << BigInt(BITS[family] - prefix), isPublic };
}

/**
 * Why these ranges, together, are open to the world; undefined when they are
 * not. A text that does not parse counts as open (nothing proves otherwise).
 */
export function worldOpenReason(texts: readonly string[]): string | undefined {
  const parsed = texts.map(parseCidr);
  const unreadable = texts.filter((_, i) => typeof parsed[i] === 'string');
  if (unreadable.length) return `${unreadable.join(', ')}: not an address range, so counted as open to the world`;
  const ranges = (parsed as Cidr[]).filter((c) => c.isPublic);
  for (const family of ['ipv4', 'ipv6'] as const) {
    const ofFamily = ranges.filter((c) => c.family === family);
    const limit = 1n << BigInt(BITS[family] - WORLD_OPEN_PREFIX[family]);
    if (ofFamily.reduce((sum, c) => sum + c.size, 0n) > limit) {
      const which = family === 'ipv4' ? 'IPv4' : 'IPv6';
      return `${ofFamily.map((c) => c.text).join(', ')} ${ofFamily.length === 1 ? 'admits' : 'admit'} more public ${which} addresses than a /${WORLD_OPEN_PREFIX[family]}: open to the world`;
    }
  }
  return undefined;
}
