/** Collections as the contract names them. */
import { Schema } from "effect"
import { Email } from "../accounts/Accounts.ts"
import { contractBody } from "../contract/Contract.ts"
import { Uuid } from "../contract/Uuid.ts"
import { TrimmedText } from "../contract/Text.ts"

export const CollectionRole = contractBody("CollectionRole", Schema.Literals(["owner", "editor", "viewer"]))
export type CollectionRole = typeof CollectionRole.Type

export const Collection = contractBody(
  "Collection",
  Schema.Struct({
    id: Uuid,
    name: Schema.String,
    description: Schema.String,
    owner_id: Uuid,
    role: Schema.NullOr(CollectionRole),
    document_count: Schema.Int,
    member_count: Schema.Int,
    created_at: Schema.DateFromString,
    updated_at: Schema.DateFromString
  })
)
export type Collection = typeof Collection.Type

export const CollectionPage = contractBody(
  "CollectionPage",
  Schema.Struct({ items: Schema.Array(Collection), next_cursor: Schema.NullOr(Schema.String), total: Schema.Int })
)

const Name = TrimmedText({ minLength: 1, maxLength: 200 })
const Description = TrimmedText({ maxLength: 2000 })

export const CreateCollectionRequest = contractBody(
  "CreateCollectionRequest",
  Schema.Struct({ name: Name, description: Schema.optionalKey(Description) })
)

export const UpdateCollectionRequest = contractBody(
  "UpdateCollectionRequest",
  Schema.Struct({ name: Schema.optionalKey(Name), description: Schema.optionalKey(Description) }).check(
    Schema.makeFilter((change) => change.name !== undefined || change.description !== undefined || "Give a name, a description, or both")
  )
)

export const CollectionMember = contractBody(
  "CollectionMember",
  Schema.Struct({
    user_id: Uuid,
    email: Schema.String,
    display_name: Schema.String,
    role: CollectionRole,
    added_at: Schema.DateFromString
  })
)

export const CollectionMemberList = contractBody("CollectionMemberList", Schema.Struct({ items: Schema.Array(CollectionMember) }))

export const SetCollectionMemberRequest = contractBody("SetCollectionMemberRequest", Schema.Struct({ role: CollectionRole }))

/** Who is to be a member: by email (what a colleague can tell the owner) or by id, exactly one. */
export const AddCollectionMemberRequest = contractBody(
  "AddCollectionMemberRequest",
  Schema.Union([
    contractBody("CollectionMemberByEmail", Schema.Struct({ email: Email, role: CollectionRole })),
    contractBody("CollectionMemberById", Schema.Struct({ user_id: Uuid, role: CollectionRole }))
  ])
)
