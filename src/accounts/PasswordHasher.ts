/**
 * Passwords as argon2id PHC strings with OWASP's parameters (19 MiB, 2 passes, 1 lane). The
 * native implementation runs on libuv's thread pool, so hashing does not stall the event loop,
 * and compares in constant time. `verifyOrWaste` checks against a throwaway hash when there is
 * no account, so an unknown email costs what a wrong password does.
 */
import { hash, type Options, verify } from "@node-rs/argon2"
import { Context, Effect, Layer, Redacted } from "effect"

const owasp: Options = { memoryCost: 19_456, timeCost: 2, parallelism: 1, outputLen: 32 }

export class PasswordHasher extends Context.Service<
  PasswordHasher,
  {
    readonly hash: (password: Redacted.Redacted) => Effect.Effect<string>
    /** Whether `password` matches `phc`; with no `phc`, spends the same time and answers false. */
    readonly verifyOrWaste: (phc: string | undefined, password: Redacted.Redacted) => Effect.Effect<boolean>
  }
>()("basalt/PasswordHasher") {
  static readonly layer = Layer.effect(
    PasswordHasher,
    Effect.gen(function* () {
      const hashOf = (password: Redacted.Redacted) => Effect.promise(() => hash(Redacted.value(password), owasp))
      const throwaway = yield* hashOf(Redacted.make(crypto.randomUUID()))
      return PasswordHasher.of({
        hash: hashOf,
        verifyOrWaste: (phc, password) =>
          Effect.promise(() =>
            verify(phc ?? throwaway, Redacted.value(password)).then(
              (ok) => ok && phc !== undefined,
              () => false
            )
          )
      })
    })
  )
}
