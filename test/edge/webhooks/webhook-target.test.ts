// webhookTargetError is pure: these tests only call it and workerd's URL parser, and send nothing.
import { describe, expect, it } from 'vitest'
import {
  type WebhookTargetPolicy,
  webhookTargetError,
} from '../../../edge/src/webhooks/webhook-target.ts'

const PUBLIC: WebhookTargetPolicy = { allowHttp: false, allowPrivate: false }

const LOOPBACK = 'must not point to a loopback address'
const PRIVATE = 'must not point to a private address'
const LINK_LOCAL = 'must not point to a link-local address'
const UNSPECIFIED = 'must not point to an unspecified address'
const RESERVED = 'must not point to a reserved address'

/** [URL, message] for URLs refused under the production policy. */
const REFUSED: [string, string][] = [
  // Loopback, in every spelling the URL parser turns into 127.0.0.0/8.
  ['https://127.0.0.1/hook', LOOPBACK],
  ['https://127.0.0.1:8443/hook', LOOPBACK],
  ['https://127.255.255.254/', LOOPBACK],
  ['https://127.1/', LOOPBACK],
  ['https://2130706433/', LOOPBACK],
  ['https://0177.0.0.1/', LOOPBACK],
  ['https://0x7f.0.0.1/', LOOPBACK],
  ['https://0x7f000001/', LOOPBACK],
  ['https://017700000001/', LOOPBACK],
  ['https://127.0.0.1./', LOOPBACK],
  ['https://%31%32%37.0.0.1/', LOOPBACK],
  ['https://１２７.０.０.１/', LOOPBACK],
  ['https://[::1]/', LOOPBACK],
  ['https://[0:0:0:0:0:0:0:1]/', LOOPBACK],
  ['https://[::ffff:127.0.0.1]/', LOOPBACK],
  ['https://[::ffff:7f00:1]/', LOOPBACK],
  ['https://[::127.0.0.1]/', LOOPBACK],
  ['https://[64:ff9b::127.0.0.1]/', LOOPBACK],
  ['https://[2002:7f00:1::1]/', LOOPBACK],
  // Unspecified: 0.0.0.0 reaches this host on most systems.
  ['https://0.0.0.0/', UNSPECIFIED],
  ['https://0/', UNSPECIFIED],
  ['https://[::]/', UNSPECIFIED],
  // RFC 1918 and unique local.
  ['https://10.0.0.1/', PRIVATE],
  ['https://10.1/', PRIVATE],
  ['https://172.16.0.1/', PRIVATE],
  ['https://172.31.255.255/', PRIVATE],
  ['https://192.168.1.1/', PRIVATE],
  ['https://0xc0a80101/', PRIVATE],
  ['https://[::ffff:10.0.0.1]/', PRIVATE],
  ['https://[::ffff:c0a8:101]/', PRIVATE],
  ['https://[fc00::1]/', 'must not point to a unique local (private) address'],
  ['https://[fd12:3456:789a::1]/', 'must not point to a unique local (private) address'],
  // Link-local, the cloud metadata address above all.
  ['https://169.254.169.254/latest/meta-data/', LINK_LOCAL],
  ['https://[::ffff:169.254.169.254]/', LINK_LOCAL],
  ['https://[fe80::1]/', LINK_LOCAL],
  // Shared address space (RFC 6598).
  ['https://100.64.0.1/', 'must not point to a shared (carrier-grade NAT) address'],
  ['https://100.127.255.254/', 'must not point to a shared (carrier-grade NAT) address'],
  // Multicast and broadcast.
  ['https://224.0.0.1/', 'must not point to a multicast address'],
  ['https://239.255.255.250/', 'must not point to a multicast address'],
  ['https://[ff02::1]/', 'must not point to a multicast address'],
  ['https://255.255.255.255/', 'must not point to a broadcast address'],
  // Reserved, documentation, benchmarking and non-global IPv6.
  ['https://240.0.0.1/', RESERVED],
  ['https://192.0.2.1/', RESERVED],
  ['https://198.18.0.1/', RESERVED],
  ['https://[2001:db8::1]/', RESERVED],
  ['https://[100::1]/', RESERVED],
  ['https://[4000::1]/', RESERVED],
  ['https://[fec0::1]/', 'must not point to a site-local address'],
  // IPv6 forms embedding a public IPv4 address are refused as what they are.
  ['https://[::ffff:93.184.216.34]/', 'must not point to an IPv4-mapped address'],
  ['https://[::93.184.216.34]/', 'must not point to an IPv4-compatible address'],
  ['https://[64:ff9b::93.184.216.34]/', 'must not point to a NAT64 address'],
  ['https://[2002:5db8:d822::1]/', 'must not point to a 6to4 address'],
  ['https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', 'must not point to a Teredo address'],
  // Local names, in any case, with a trailing dot, percent-encoded or in fullwidth letters.
  ['https://localhost/', 'must not point to localhost'],
  ['https://LocalHost:8443/', 'must not point to localhost'],
  ['https://localhost./', 'must not point to localhost'],
  ['https://localhost。/', 'must not point to localhost'],
  ['https://api.localhost/', 'must not point to localhost'],
  ['https://%6cocalhost/', 'must not point to localhost'],
  ['https://ｌｏｃａｌｈｏｓｔ/', 'must not point to localhost'],
  ['https://metadata.google.internal/', 'must not point to a local name (.internal)'],
  ['https://HOOKS.INTERNAL./', 'must not point to a local name (.internal)'],
  ['https://printer.local/', 'must not point to a local name (.local)'],
  ['https://Printer.Local./', 'must not point to a local name (.local)'],
  ['https://nas.home.arpa/', 'must not point to a local name (.home.arpa)'],
  ['https://intranet/', 'must be a fully qualified domain name'],
  // Scheme, userinfo and syntax.
  ['http://hooks.example.com/x', 'must be an https URL'],
  ['ftp://hooks.example.com/x', 'must be an https URL'],
  ['https://user:secret@hooks.example.com/x', 'must not contain a user name or password'],
  ['https://user@hooks.example.com/x', 'must not contain a user name or password'],
  ['https://hooks.example.com@127.0.0.1/', 'must not contain a user name or password'],
  ['https://[fe80::1%25eth0]/', 'must be a valid URL'],
  ['not a url', 'must be a valid URL'],
]

const ACCEPTED = [
  'https://hooks.example.com/x',
  'https://hooks.example.com:8443/path?q=1',
  'https://93.184.216.34/',
  'https://8.8.8.8/',
  'https://[2606:4700::1111]/',
  'https://[2001:4860:4860::8888]/',
  'https://xn--bcher-kva.example/',
  // Names that contain a local label without ending in one.
  'https://localhost.example.com/',
  'https://local.example.com/',
  // Just outside 100.64.0.0/10 and 172.16.0.0/12.
  'https://100.128.0.1/',
  'https://172.32.0.1/',
  // .test (RFC 6761) never resolves publicly; the workerd tests' receivers use it.
  'https://hooks.test/x',
]

describe('webhookTargetError', () => {
  it.each(REFUSED)('refuses %s: %s', (url, message) => {
    expect(webhookTargetError(url, PUBLIC)).toBe(message)
  })

  it.each(ACCEPTED)('accepts %s', (url) => {
    expect(webhookTargetError(url, PUBLIC)).toBeNull()
  })

  it('accepts plain http only when allowHttp', () => {
    const policy = { allowHttp: true, allowPrivate: false }
    expect(webhookTargetError('http://hooks.example.com/x', policy)).toBeNull()
    expect(webhookTargetError('http://127.0.0.1/x', policy)).toBe(LOOPBACK)
    expect(webhookTargetError('ftp://hooks.example.com/x', policy)).toBe(
      'must be an http or https URL',
    )
  })

  it('accepts local addresses and names when allowPrivate, but never userinfo', () => {
    const policy = { allowHttp: true, allowPrivate: true }
    expect(webhookTargetError('http://127.0.0.1:8788/hook', policy)).toBeNull()
    expect(webhookTargetError('http://localhost:8788/hook', policy)).toBeNull()
    expect(webhookTargetError('https://[::1]/hook', policy)).toBeNull()
    expect(webhookTargetError('https://10.0.0.1/hook', policy)).toBeNull()
    expect(webhookTargetError('http://user:secret@localhost/hook', policy)).toBe(
      'must not contain a user name or password',
    )
    expect(webhookTargetError('ftp://localhost/hook', policy)).toBe('must be an http or https URL')
  })
})

describe("workerd's URL parser", () => {
  // The rules above read `hostname` only; they rely on the parser writing each host one way.
  it.each([
    ['https://2130706433/', '127.0.0.1'],
    ['https://0177.0.0.1/', '127.0.0.1'],
    ['https://0x7f.0.0.1/', '127.0.0.1'],
    ['https://127.1/', '127.0.0.1'],
    ['https://127.0.0.1./', '127.0.0.1'],
    ['https://%31%32%37.0.0.1/', '127.0.0.1'],
    ['https://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]'],
    ['https://[0:0:0:0:0:0:0:1]/', '[::1]'],
    ['https://%6cocalhost/', 'localhost'],
    ['https://LOCALHOST./', 'localhost.'],
    ['https://ｌｏｃａｌｈｏｓｔ/', 'localhost'],
  ])('writes the host of %s as %s', (url, hostname) => {
    expect(new URL(url).hostname).toBe(hostname)
  })
})
