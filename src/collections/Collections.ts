/** Collections as the contract names them. */
import { Schema } from "effect"
import { contractBody } from "../contract/Contract.ts"

export const CollectionRole = contractBody("CollectionRole", Schema.Literal("owner", "editor", "viewer"))
export type CollectionRole = typeof CollectionRole.Type

export const Collection = contractBody(
  "Collection",
  Schema.Struct({
    id: Schema.UUID,
    name: Schema.String,
    description: Schema.String,
    owner_id: Schema.UUID,
    role: Schema.NullOr(CollectionRole),
    document_count: Schema.Int,
    member_count: Schema.Int,
    created_at: Schema.Date,
    updated_at: Schema.Date
  })
)
export type Collection = typeof Collection.Type

export const CollectionPage = contractBody(
  "CollectionPage",
  Schema.Struct({ items: Schema.Array(Collection), next_cursor: Schema.NullOr(Schema.String), total: Schema.Int })
)

const Name = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))
const Description = Schema.Trim.pipe(Schema.maxLength(2000))

export const CreateCollectionRequest = contractBody(
  "CreateCollectionRequest",
  Schema.Struct({ name: Name, description: Schema.optional(Description) })
)

export const UpdateCollectionRequest = contractBody(
  "UpdateCollectionRequest",
  Schema.Struct({ name: Schema.optional(Name), description: Schema.optional(Description) }).pipe(
    Schema.filter((change) => change.name !== undefined || change.description !== undefined, {
      message: () => "Give a name, a description, or both"
    })
  )
)

export const CollectionMember = contractBody(
  "CollectionMember",
  Schema.Struct({
    user_id: Schema.UUID,
    email: Schema.String,
    display_name: Schema.String,
    role: CollectionRole,
    added_at: Schema.Date
  })
)

export const CollectionMemberList = contractBody(
  "CollectionMemberList",
  Schema.Struct({ items: Schema.Array(CollectionMember) })
)

export const SetCollectionMemberRequest = contractBody(
  "SetCollectionMemberRequest",
  Schema.Struct({ role: CollectionRole })
)
