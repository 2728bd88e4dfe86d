/**
 * Checks compose.yaml without a Docker engine: against the Compose Specification's JSON schema,
 * then what the schema cannot see: that every build and bind mount points at files that exist,
 * that images are pinned to a tag, that the load balancer's nginx upstreams name services of this
 * file on their port and keep /internal (runner-to-runner only) closed, and that the Basalt
 * services set only variables Basalt reads. One line per problem; exit 1 if there is any.
 *
 *   npm run lint:compose        (.ci/run runs it)
 *   node --import tsx scripts/lint-compose.ts other/compose.yaml
 *
 * deploy/compose-spec.schema.json is schema/compose-spec.json of github.com/compose-spec/compose-spec
 * (Apache-2.0), unchanged, as of commit a08f8d51631b7127ddac3d2c65537db429d0f1d0 (2025-10-21, its
 * last change as of 2026-06-23). Replace it with a newer copy when compose.yaml needs newer keys.
 */
import { existsSync, readFileSync, statSync } from "node:fs"
import { dirname, isAbsolute, join, relative, resolve } from "node:path"
import process from "node:process"
import Ajv from "ajv"
import { parse } from "yaml"

const root = resolve(import.meta.dirname, "..")
const composeFile = resolve(process.argv[2] ?? join(root, "compose.yaml"))
const schemaFile = join(root, "deploy/compose-spec.schema.json")
const appConfigFile = join(root, "src/config/AppConfig.ts")
/** Read by the cluster runner (issue 13), not (yet) by AppConfig. */
const clusterVariables = ["BASALT_RUNNER_HOST", "BASALT_RUNNER_PORT"]

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)
/** Interpolated values (`${X:-default}`) are only known to `docker compose`: not checked here. */
const isInterpolated = (text: string) => text.includes("${")

const problems: Array<string> = []
const problem = (message: string) => problems.push(message)
/** Paths inside the repository relative to it, others as they are. */
const shown = (path: string) => (path.startsWith(`${root}/`) ? relative(root, path) : path)

const compose: unknown = parse(readFileSync(composeFile, "utf8"))

// The schema names its meta-schema https://json-schema.org/draft-07/schema, an id Ajv does not know
// (its draft-07 is http://…#); the schema is taken as published rather than checked against it.
const ajv = new Ajv.default({ allErrors: true, strict: false, validateSchema: false })
const validate = ajv.compile(JSON.parse(readFileSync(schemaFile, "utf8")))
if (!validate(compose)) {
  for (const error of validate.errors ?? []) {
    problem(
      `schema: ${error.instancePath || "/"} ${error.message ?? "is invalid"}${error.params ? ` ${JSON.stringify(error.params)}` : ""}`
    )
  }
}

const services = isObject(compose) && isObject(compose.services) ? compose.services : {}
const namedVolumes = isObject(compose) && isObject(compose.volumes) ? Object.keys(compose.volumes) : []
const composeDir = dirname(composeFile)
const fromCompose = (path: string) => (isAbsolute(path) ? path : resolve(composeDir, path))

/** The build's context and Dockerfile, as absolute paths; undefined without a build. */
const buildOf = (service: Json): { context: string; dockerfile: string } | undefined => {
  const build = service.build
  if (typeof build === "string") return { context: fromCompose(build), dockerfile: join(fromCompose(build), "Dockerfile") }
  if (!isObject(build)) return undefined
  const context = fromCompose(typeof build.context === "string" ? build.context : ".")
  const dockerfile = typeof build.dockerfile === "string" ? build.dockerfile : "Dockerfile"
  return { context, dockerfile: isAbsolute(dockerfile) ? dockerfile : join(context, dockerfile) }
}

/** A Basalt service is one built from this repository's Dockerfile. */
const isBasalt = (service: Json) => buildOf(service)?.dockerfile === join(root, "Dockerfile")

/** Bind mounts as [host path, container path]; named volumes are checked against the top-level list. */
const bindMountsOf = (name: string, service: Json): Array<[string, string]> => {
  const mounts: Array<[string, string]> = []
  for (const volume of Array.isArray(service.volumes) ? service.volumes : []) {
    let source: string | undefined
    let target: string | undefined
    let bind = false
    if (typeof volume === "string") {
      const [first, second] = volume.split(":")
      source = second === undefined ? undefined : first
      target = second ?? first
      bind = source !== undefined && /^[./~]/.test(source)
    } else if (isObject(volume)) {
      source = typeof volume.source === "string" ? volume.source : undefined
      target = typeof volume.target === "string" ? volume.target : undefined
      bind = volume.type === "bind"
      if (volume.type !== "volume" && !bind) continue
    }
    if (source === undefined || target === undefined || isInterpolated(source)) continue
    if (bind) mounts.push([fromCompose(source), target])
    else if (!namedVolumes.includes(source)) problem(`services.${name}: the volume ${source} is not declared under the top-level volumes`)
  }
  return mounts
}

const imageIsPinned = (image: string) => /@sha256:[0-9a-f]{64}$/.test(image) || /:[\w][\w.-]*$/.test(image.split("/").at(-1) ?? "")

const variablesBasaltReads = new Set([...readFileSync(appConfigFile, "utf8").matchAll(/"([A-Z][A-Z0-9_]*)"/g)].map((match) => match[1]))
for (const name of clusterVariables) variablesBasaltReads.add(name)

const environmentOf = (service: Json): Record<string, string> => {
  const environment = service.environment
  if (Array.isArray(environment)) {
    return Object.fromEntries(
      environment.map((entry) => String(entry)).map((entry) => [entry.split("=")[0] ?? "", entry.slice(entry.indexOf("=") + 1)])
    )
  }
  return isObject(environment) ? Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, String(value ?? "")])) : {}
}

/** The port a service's Basalt listens on: its PORT, else Basalt's default. */
const portOf = (service: Json) => {
  const port = environmentOf(service).PORT
  return port === undefined || isInterpolated(port) ? "8080" : port
}

/** Upstream blocks (name → `host:port` of each server), proxy_pass targets, and whether /internal is closed. */
const readNginx = (text: string) => {
  const lines = text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .join("\n")
  const upstreams = new Map<string, Array<string>>()
  for (const block of lines.matchAll(/upstream\s+(\S+)\s*\{([^}]*)\}/g)) {
    upstreams.set(
      block[1] ?? "",
      [...(block[2] ?? "").matchAll(/^\s*server\s+(\S+?)[\s;]/gm)].map((server) => server[1] ?? "")
    )
  }
  const proxied = [...lines.matchAll(/proxy_pass\s+https?:\/\/([^/;\s]+)/g)].map((match) => match[1] ?? "")
  const internalClosed = /location\s+(\^~\s+)?\/internal\/?\s*\{\s*(return\s+40[34]|deny\s+all)\s*;/.test(lines)
  return { upstreams, proxied, internalClosed }
}

const checkNginx = (name: string, config: string) => {
  const { internalClosed, proxied, upstreams } = readNginx(readFileSync(config, "utf8"))
  const where = `services.${name} (${shown(config)})`
  for (const target of new Set(proxied)) {
    if (!upstreams.has(target)) problem(`${where}: proxy_pass names ${target}, which is no upstream of this file`)
  }
  if (upstreams.size === 0) problem(`${where}: no upstream block`)
  for (const [upstream, servers] of upstreams) {
    if (servers.length === 0) problem(`${where}: upstream ${upstream} has no server`)
    for (const server of servers) {
      const [host = "", port = "80"] = server.split(":")
      const target = services[host]
      if (!isObject(target)) {
        problem(`${where}: upstream ${upstream} names ${host}, which is no service of compose.yaml`)
      } else if (isBasalt(target) && port !== portOf(target)) {
        problem(`${where}: upstream ${upstream} sends to ${host}:${port}, but ${host} listens on ${portOf(target)}`)
      }
    }
  }
  if (!internalClosed) problem(`${where}: /internal (runner-to-runner only) must be closed: location ^~ /internal { return 404; }`)
}

if (Object.keys(services).length === 0) problem("no services")
for (const [name, service] of Object.entries(services)) {
  if (!isObject(service)) continue
  const build = buildOf(service)
  if (build !== undefined) {
    if (!existsSync(build.context) || !statSync(build.context).isDirectory()) {
      problem(`services.${name}: the build context ${shown(build.context)} is not a directory`)
    } else if (!existsSync(build.dockerfile)) {
      problem(`services.${name}: the Dockerfile ${shown(build.dockerfile)} does not exist`)
    }
  } else if (typeof service.image !== "string") {
    problem(`services.${name}: neither build nor image`)
  } else if (!imageIsPinned(service.image)) {
    problem(`services.${name}: the image ${service.image} names no tag (it would be :latest, whatever that is on the day)`)
  }

  for (const [source, target] of bindMountsOf(name, service)) {
    if (!existsSync(source)) problem(`services.${name}: the mounted ${shown(source)} does not exist`)
    else if (target.startsWith("/etc/nginx/") && target.endsWith(".conf")) checkNginx(name, source)
  }

  if (isBasalt(service)) {
    if (service.env_file !== undefined) problem(`services.${name}: env_file cannot be checked here; list the variables under environment`)
    for (const variable of Object.keys(environmentOf(service))) {
      if (!variablesBasaltReads.has(variable)) problem(`services.${name}: Basalt reads no variable ${variable} (src/config/AppConfig.ts)`)
    }
    // A published port would let anyone reach /internal/cluster past the balancer.
    if (service.ports !== undefined) problem(`services.${name}: publishes a port: only the balancer may (it keeps /internal closed)`)
  }
}

if (problems.length > 0) {
  for (const line of problems) console.error(`${shown(composeFile)}: ${line}`)
  process.exit(1)
}
console.log(`${shown(composeFile)}: ok (${Object.keys(services).join(", ")})`)
