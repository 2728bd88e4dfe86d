/** The part of oidc-provider's API the single sign-on test uses (the package ships no types). */
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http"

  export interface Account {
    readonly accountId: string
    readonly claims: () => Record<string, unknown>
  }

  export interface Configuration {
    readonly clients: ReadonlyArray<Record<string, unknown>>
    readonly pkce?: { readonly required: () => boolean }
    readonly claims?: Record<string, ReadonlyArray<string>>
    readonly cookies?: { readonly keys: ReadonlyArray<string> }
    readonly jwks?: { readonly keys: ReadonlyArray<Record<string, unknown>> }
    readonly features?: Record<string, { readonly enabled: boolean }>
    readonly findAccount: (context: unknown, id: string) => Account | Promise<Account>
  }

  export default class Provider {
    constructor(issuer: string, configuration: Configuration)
    callback(): (req: IncomingMessage, res: ServerResponse) => void
  }
}
