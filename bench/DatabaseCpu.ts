/** What a local Postgres spends on one database, for the benchmarks' CPU columns. */
import { readFileSync } from "node:fs"
import { withPostgres } from "./Postgres.ts"

/**
 * CPU time (ms) the database's server processes have used so far, when they run on this machine
 * (Linux /proc; clock ticks of 10 ms): the machine is shared, so CPU per query is the figure that
 * other work disturbs least. Undefined for PGlite (in-process) or a server on another host (`admin`,
 * a URL for any database of the server, names it). Counts the processes connected now: sample
 * while the client's pool is open.
 */
export const serverCpu = async (admin: string | undefined, database: string) => {
  if (admin === undefined || !["127.0.0.1", "localhost", "::1", "[::1]"].includes(new URL(admin).hostname)) return undefined
  const rows = await withPostgres(admin, (sql) => sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = ${database}`)
  let ticks = 0
  for (const { pid } of rows) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8")
        .replace(/^.*\) /, "")
        .split(" ")
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      return undefined
    }
  }
  return ticks * 10
}
