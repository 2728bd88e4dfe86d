/**
 * Shares one PGlite session between many wire-protocol connections.
 *
 * PGlite is a single Postgres session. pglite-socket's own QueryQueueManager interleaves the
 * messages of different connections one by one, so connection A's Parse can be followed by
 * connection B's Parse before A's Bind: A then binds B's statement (wrong rows, or "portal does
 * not exist"). This queue keeps each connection's messages together up to a synchronisation
 * point (Sync, Flush, a simple Query, or a startup message) and runs that unit alone; while a
 * connection holds an open transaction or a half-finished extended-protocol exchange, only its
 * own units run. It plugs into pglite-socket's PGLiteSocketHandler, which keeps the framing,
 * SSL refusal and cancellation handling.
 */
import type { PGlite } from "@electric-sql/pglite"

interface Unit {
  readonly handlerId: number
  readonly messages: ReadonlyArray<{ readonly message: Uint8Array; readonly onData: (data: Uint8Array) => void }>
  readonly endsExchange: boolean
  readonly resolve: (bytes: number) => void
  readonly reject: (error: unknown) => void
}

// Extended-protocol messages that only take effect at the next Sync or Flush.
const deferred = new Set(["P", "B", "D", "E", "C"].map((c) => c.charCodeAt(0)))
const flush = "H".charCodeAt(0)

export class PgliteMultiplexer {
  private readonly partial = new Map<number, Array<Unit["messages"][number]>>()
  private readonly ready: Array<Unit> = []
  /** The connection whose transaction or unfinished exchange the session is in, if any. */
  private owner: number | null = null
  private running = false

  /** `onStatement(true)` before a unit runs in PGlite and `(false)` after: who watches for one that never ends. */
  constructor(
    private readonly db: PGlite,
    private readonly onStatement: (running: boolean) => void = () => {}
  ) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    const messages = this.partial.get(handlerId) ?? []
    messages.push({ message, onData })
    const type = message[0] ?? 0
    if (deferred.has(type)) {
      this.partial.set(handlerId, messages)
      return Promise.resolve(0)
    }
    this.partial.delete(handlerId)
    return new Promise((resolve, reject) => {
      this.ready.push({ handlerId, messages, endsExchange: type !== flush, resolve, reject })
      void this.run()
    })
  }

  getQueueLength(): number {
    return this.ready.length
  }

  clearQueueForHandler(handlerId: number): void {
    this.partial.delete(handlerId)
    for (let i = this.ready.length - 1; i >= 0; i--) {
      const unit = this.ready[i]!
      if (unit.handlerId === handlerId) {
        this.ready.splice(i, 1)
        unit.reject(new Error("connection closed"))
      }
    }
  }

  /** A connection that goes away mid-transaction must not leave the shared session in it. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.owner !== handlerId) return
    await this.db.runExclusive(async () => {
      if (this.db.isInTransaction()) await this.db.exec("ROLLBACK")
    })
    this.owner = null
    void this.run()
  }

  private async run(): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      for (;;) {
        const index = this.owner === null ? 0 : this.ready.findIndex((unit) => unit.handlerId === this.owner)
        if (index < 0 || this.ready.length === 0) break
        const unit = this.ready.splice(index, 1)[0]!
        try {
          let bytes = 0
          await this.db.runExclusive(async () => {
            this.onStatement(true)
            try {
              for (const { message, onData } of unit.messages) {
                await this.db.execProtocolRawStream(message, {
                  onRawData: (data) => {
                    bytes += data.length
                    onData(data)
                  }
                })
              }
            } finally {
              this.onStatement(false)
            }
          })
          this.owner = unit.endsExchange && !this.db.isInTransaction() ? null : unit.handlerId
          unit.resolve(bytes)
        } catch (error) {
          unit.reject(error)
        }
      }
    } finally {
      this.running = false
    }
  }
}
