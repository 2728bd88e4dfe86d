/**
 * Who is on the other end of a request. The socket's peer, unless that peer is a trusted proxy
 * (BASALT_TRUSTED_PROXIES): then X-Forwarded-For is read from the right, each proxy having
 * appended the address it received from, and the client is the rightmost address that is not
 * itself a trusted proxy. Entries left of that were written by the client and prove nothing.
 *
 * Addresses are parsed here rather than with node:net's BlockList so that the same code runs
 * under Deno; IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is treated as the IPv4 address it carries.
 */
import { Option, Result } from "effect"
import type { HttpServerRequest } from "effect/http"

export interface Ip {
  readonly version: 4 | 6
  readonly value: bigint
}

export interface Cidr {
  readonly version: 4 | 6
  readonly network: bigint
  readonly prefix: number
}

const bits = (version: 4 | 6) => (version === 4 ? 32 : 128)

const ipv4Pattern =
  /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

const parseIpv4 = (text: string): bigint | undefined => {
  const match = ipv4Pattern.exec(text)
  if (match === null) return undefined
  return match.slice(1).reduce((value, octet) => (value << 8n) | BigInt(octet), 0n)
}

const hexGroup = /^[0-9a-f]{1,4}$/i

/** The 16-bit groups of one side of `::`, an embedded IPv4 address counting as two. */
const groupsOf = (side: string, mayEndInIpv4: boolean): Array<number> | undefined => {
  if (side === "") return []
  const parts = side.split(":")
  const groups: Array<number> = []
  for (const [index, part] of parts.entries()) {
    if (mayEndInIpv4 && index === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4(part)
      if (v4 === undefined) return undefined
      groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn))
    } else if (hexGroup.test(part)) {
      groups.push(Number.parseInt(part, 16))
    } else {
      return undefined
    }
  }
  return groups
}

const parseIpv6 = (text: string): bigint | undefined => {
  // A zone (`fe80::1%eth0`) names an interface of this host, not part of the address.
  const address = text.split("%")[0]!
  const halves = address.split("::")
  if (halves.length > 2) return undefined
  const head = groupsOf(halves[0]!, halves.length === 1)
  const tail = halves.length === 2 ? groupsOf(halves[1]!, true) : []
  if (head === undefined || tail === undefined) return undefined
  const missing = 8 - head.length - tail.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  return [...head, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail].reduce(
    (value, group) => (value << 16n) | BigInt(group),
    0n
  )
}

const mappedPrefix = 0xffffn << 32n

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is. */
const unmapped = (ip: Ip): Ip => (ip.version === 6 && ip.value >> 32n === 0xffffn ? { version: 4, value: ip.value & 0xffffffffn } : ip)

/** An IPv4 or IPv6 address in text form; undefined for anything else. */
export const parseIp = (text: string): Ip | undefined => {
  if (text.length > 64) return undefined
  const v4 = parseIpv4(text)
  if (v4 !== undefined) return { version: 4, value: v4 }
  const v6 = text.includes(":") ? parseIpv6(text) : undefined
  return v6 === undefined ? undefined : unmapped({ version: 6, value: v6 })
}

/** Dotted IPv4, or IPv6 in its canonical text form (RFC 5952: lower case, longest zero run as `::`). */
export const formatIp = (ip: Ip): string => {
  if (ip.version === 4) return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join(".")
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(112 - 16 * i)) & 0xffffn))
  let best = { start: -1, length: 0 }
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let end = i
    while (end < 8 && groups[end] === 0) end++
    if (end - i > best.length) best = { start: i, length: end - i }
    i = end
  }
  const hex = groups.map((group) => group.toString(16))
  if (best.length < 2) return hex.join(":")
  return `${hex.slice(0, best.start).join(":")}::${hex.slice(best.start + best.length).join(":")}`
}

const mask = (version: 4 | 6, prefix: number) => ((1n << BigInt(bits(version))) - 1n) ^ ((1n << BigInt(bits(version) - prefix)) - 1n)

/** `10.0.0.0/8`, `fd00::/8`, or a single address (`192.0.2.7`, `::1`). */
export const parseCidr = (text: string): Cidr | undefined => {
  const [address = "", prefixText, ...rest] = text.trim().split("/")
  if (rest.length > 0) return undefined
  const v4 = parseIpv4(address)
  const v6 = v4 === undefined && address.includes(":") ? parseIpv6(address) : undefined
  const raw: Ip | undefined = v4 !== undefined ? { version: 4, value: v4 } : v6 !== undefined ? { version: 6, value: v6 } : undefined
  if (raw === undefined) return undefined
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined
  let prefix = prefixText === undefined ? bits(raw.version) : Number(prefixText)
  if (prefix > bits(raw.version)) return undefined
  let ip = raw
  // `::ffff:10.0.0.0/104` is 10.0.0.0/8: addresses are compared after unmapping.
  if (raw.version === 6 && (raw.value & ~0xffffffffn) === mappedPrefix) {
    if (prefix < 96) return undefined
    ip = unmapped(raw)
    prefix -= 96
  }
  return { version: ip.version, network: ip.value & mask(ip.version, prefix), prefix }
}

/** BASALT_TRUSTED_PROXIES: addresses and ranges, comma-separated. */
export const parseTrustedProxies = (text: string): Result.Result<ReadonlyArray<Cidr>, string> => {
  const entries = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
  const cidrs: Array<Cidr> = []
  for (const entry of entries) {
    const cidr = parseCidr(entry)
    if (cidr === undefined) {
      return Result.fail(`"${entry.slice(0, 60)}" is not an IP address or range (such as 10.0.0.1, 10.0.0.0/8 or fd00::/8)`)
    }
    cidrs.push(cidr)
  }
  return Result.succeed(cidrs)
}

export const inCidr = (ip: Ip, cidr: Cidr): boolean =>
  ip.version === cidr.version && (ip.value & mask(cidr.version, cidr.prefix)) === cidr.network

const isTrusted = (ip: Ip, trusted: ReadonlyArray<Cidr>) => trusted.some((cidr) => inCidr(ip, cidr))

/** One X-Forwarded-For entry: an address, possibly with a port (`192.0.2.1:443`, `[2001:db8::1]:443`). */
const parseHop = (entry: string): Ip | undefined => {
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(entry)
  if (bracketed !== null) return parseIp(bracketed[1]!)
  const v4WithPort = /^([\d.]+):\d{1,5}$/.exec(entry)
  return parseIp(v4WithPort === null ? entry : v4WithPort[1]!)
}

/** How many proxies deep X-Forwarded-For is followed: a chain longer than this is not believed. */
const maxHops = 16

/**
 * The client of a request whose socket peer is `peer` and whose X-Forwarded-For is
 * `forwardedFor`. Undefined only when the peer itself is unknown.
 */
export const resolveClientIp = (
  peer: string | undefined,
  forwardedFor: string | undefined,
  trusted: ReadonlyArray<Cidr>
): Ip | undefined => {
  const peerIp = peer === undefined ? undefined : parseIp(peer)
  if (peerIp === undefined || forwardedFor === undefined || !isTrusted(peerIp, trusted)) return peerIp
  let client = peerIp
  let followed = 0
  // From the right, without splitting the whole header: only the trusted end of it is read.
  let end = forwardedFor.length
  while (end > 0 && followed < maxHops) {
    const start = forwardedFor.lastIndexOf(",", end - 1)
    const entry = forwardedFor.slice(start + 1, end).trim()
    end = start === -1 ? 0 : start
    if (entry === "") continue
    const hop = parseHop(entry)
    // Garbage a trusted proxy passed on: the client is the last address one of them vouched for.
    if (hop === undefined) break
    client = hop
    followed++
    if (!isTrusted(hop, trusted)) break
  }
  return client
}

/** The client of `request`; undefined when the socket's peer is unknown. */
export const clientIpOf = (request: HttpServerRequest.HttpServerRequest, trusted: ReadonlyArray<Cidr>): Ip | undefined =>
  resolveClientIp(Option.getOrUndefined(request.remoteAddress), request.headers["x-forwarded-for"], trusted)
