// Which webhook URLs the edge may POST to. A webhook URL is chosen by the caller, so without this
// check the worker would send requests wherever it is told: to loopback, the private network or a
// cloud metadata service (server-side request forgery). The address rules follow the IANA
// special-purpose address registries (RFC 6890): any address ipaddr.js does not classify as
// 'unicast' is refused, and the message names its kind. The name rules refuse names that can only
// mean this machine or a local network: `localhost` (RFC 6761 §6.3), `.local` (mDNS, RFC 6762),
// `.home.arpa` (RFC 8375), `.internal` (private use, ICANN 2024) and single-label names (resolved
// through local search domains).
//
// Hosts are read from the WHATWG URL parser, which rewrites every IPv4 spelling (2130706433,
// 0177.0.0.1, 0x7f.0.0.1, 127.1, a trailing dot) to dotted decimal, percent-decodes and IDNA-maps
// names (`%6cocalhost`, fullwidth letters, `。`), and lower-cases them; the rules run on that form only.
//
// IPv6 forms that embed an IPv4 address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96,
// IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, Teredo
// 2001::/32) are all refused, even around a public IPv4 address: a receiver has no reason to be
// written that way, and translators may reach whatever they embed. When the embedded address is
// special, the message names its kind ("loopback" for ::ffff:127.0.0.1). IPv6 outside the global
// unicast block 2000::/3 is refused as reserved.
//
// Not caught here: a public DNS name whose records point to a private address. The check would
// need the resolution the fetch makes; instead the worker's fetch goes out through Cloudflare's
// network, which does not route to private or loopback addresses. (Under `wrangler dev` it does
// not; `allowPrivate` is for that setting alone.)
import ipaddr from 'ipaddr.js'

export interface WebhookTargetPolicy {
  /** Accept plain http (local development). */
  allowHttp: boolean
  /** Accept special-purpose addresses and local names (local development); never userinfo. */
  allowPrivate: boolean
}

/** What an address range is called in a message, after "must not point to". */
const RANGE_NAMES: Record<string, string> = {
  unspecified: 'an unspecified address',
  broadcast: 'a broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a shared (carrier-grade NAT) address',
  private: 'a private address',
  uniqueLocal: 'a unique local (private) address',
  deprecatedSiteLocal: 'a site-local address',
  ipv4Mapped: 'an IPv4-mapped address',
  ipv4Compatible: 'an IPv4-compatible address',
  rfc6145: 'an IPv4-translated address',
  rfc6052: 'a NAT64 address',
  '6to4': 'a 6to4 address',
  teredo: 'a Teredo address',
}
/** Every other special range (documentation, benchmarking, AS112, AMT, ORCHID, discard, ...). */
const RESERVED = 'a reserved address'

/** Names refused with every subdomain, compared without a trailing dot. */
const LOCAL_NAMES = ['localhost', 'local', 'internal', 'home.arpa'] as const

const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parseCIDR('2000::/3')

/**
 * Why `url` may not receive webhooks, as a short message for the `webhookUrl` field, or null when
 * it may.
 *
 * @example
 * webhookTargetError('https://127.1/hook', { allowHttp: false, allowPrivate: false })
 * // 'must not point to a loopback address'
 */
export function webhookTargetError(url: string, policy: WebhookTargetPolicy): string | null {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'must be a valid URL'
  }
  const schemes = policy.allowHttp ? ['https:', 'http:'] : ['https:']
  if (!schemes.includes(parsed.protocol)) {
    return policy.allowHttp ? 'must be an http or https URL' : 'must be an https URL'
  }
  // Credentials would be sent to the receiver in an Authorization header and stored with the job.
  if (parsed.username !== '' || parsed.password !== '') {
    return 'must not contain a user name or password'
  }
  if (policy.allowPrivate) return null
  const host = parsed.hostname
  if (host.startsWith('[')) return addressError(ipaddr.IPv6.parse(host.slice(1, -1)))
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return addressError(ipaddr.IPv4.parse(host))
  return nameError(host)
}

function nameError(host: string): string | null {
  const name = host.replace(/\.+$/, '')
  for (const local of LOCAL_NAMES) {
    if (name !== local && !name.endsWith(`.${local}`)) continue
    // Every name under localhost. is loopback too (RFC 6761 §6.3).
    return local === 'localhost'
      ? 'must not point to localhost'
      : `must not point to a local name (.${local})`
  }
  if (!name.includes('.')) return 'must be a fully qualified domain name'
  return null
}

function addressError(address: ipaddr.IPv4 | ipaddr.IPv6): string | null {
  const range = rangeOf(address)
  if (range === 'unicast') return null
  if (address.kind() === 'ipv6') {
    const embedded = embeddedIPv4(address as ipaddr.IPv6, range)
    const embeddedRange = embedded ? embedded.range() : 'unicast'
    if (embeddedRange !== 'unicast') return `must not point to ${describe(embeddedRange)}`
  }
  return `must not point to ${describe(range)}`
}

function describe(range: string): string {
  return RANGE_NAMES[range] ?? RESERVED
}

/** ipaddr.js's range, plus the two IPv6 blocks it calls unicast but that are not global. */
function rangeOf(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  const range = address.range()
  if (address.kind() === 'ipv4' || range !== 'unicast') return range
  const parts = (address as ipaddr.IPv6).parts
  // ::a.b.c.d (RFC 4291 §2.5.5.1, deprecated); :: and ::1 are classified above.
  if (parts.slice(0, 6).every((part) => part === 0)) return 'ipv4Compatible'
  return address.match(GLOBAL_UNICAST_V6) ? 'unicast' : 'reserved'
}

/** The IPv4 address an IPv6 form carries at a fixed place, if it has one. */
function embeddedIPv4(address: ipaddr.IPv6, range: string): ipaddr.IPv4 | null {
  const { parts } = address
  const fromParts = (high: number, low: number) =>
    new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff])
  switch (range) {
    case 'ipv4Mapped':
    case 'ipv4Compatible':
    case 'rfc6145':
      return fromParts(parts[6] ?? 0, parts[7] ?? 0)
    case 'rfc6052':
      // 64:ff9b::/96 keeps the IPv4 address in its last 32 bits (RFC 6052 §2.2); 64:ff9b:1::/48 may not.
      return parts[2] === 0 ? fromParts(parts[6] ?? 0, parts[7] ?? 0) : null
    case '6to4':
      return fromParts(parts[1] ?? 0, parts[2] ?? 0)
    default:
      return null
  }
}
