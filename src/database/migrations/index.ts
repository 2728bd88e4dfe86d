/**
 * Every migration, imported statically (no filesystem glob) so that Deno and bundlers see them.
 * Keys are `<id>_<name>`; ids only ever grow, and need not be consecutive.
 */
import * as Migrator from "effect/sql/Migrator"
import instance from "./0001_instance.ts"
import accounts from "./0002_accounts.ts"
import apiKeys from "./0003_api_keys.ts"
import audit from "./0004_audit.ts"
import browserSessions from "./0005_browser_sessions.ts"
import rateLimits from "./0006_rate_limits.ts"
import singleSignOn from "./0007_single_sign_on.ts"
import documents from "./0008_documents.ts"
import chunkEmbeddings from "./0009_chunk_embeddings.ts"
import embeddingIndex from "./0010_embedding_index.ts"
import search from "./0011_search.ts"
import searchPostings from "./0012_search_postings.ts"
import searchPostingAccess from "./0013_search_posting_access.ts"
import documentDeletions from "./0014_document_deletions.ts"
import searchPostingRewritesByChunk from "./0015_search_posting_rewrites_by_chunk.ts"
import searchVectorOnce from "./0016_search_vector_once.ts"
import keywordSearchFunction from "./0017_keyword_search_function.ts"
import keywordRankingIndependentOfPage from "./0018_keyword_ranking_independent_of_page.ts"
import chat from "./0019_chat.ts"
import chatRuns from "./0020_chat_runs.ts"
import chatBudgets from "./0021_chat_budgets.ts"
import pages from "./0022_pages.ts"
import chatContentFilter from "./0023_chat_content_filter.ts"

const all = {
  "0001_instance": instance,
  "0002_accounts": accounts,
  "0003_api_keys": apiKeys,
  "0004_audit": audit,
  "0005_browser_sessions": browserSessions,
  "0006_rate_limits": rateLimits,
  "0007_single_sign_on": singleSignOn,
  "0008_documents": documents,
  "0009_chunk_embeddings": chunkEmbeddings,
  "0010_embedding_index": embeddingIndex,
  "0011_search": search,
  "0012_search_postings": searchPostings,
  "0013_search_posting_access": searchPostingAccess,
  "0014_document_deletions": documentDeletions,
  "0015_search_posting_rewrites_by_chunk": searchPostingRewritesByChunk,
  "0016_search_vector_once": searchVectorOnce,
  "0017_keyword_search_function": keywordSearchFunction,
  "0018_keyword_ranking_independent_of_page": keywordRankingIndependentOfPage,
  "0019_chat": chat,
  "0020_chat_runs": chatRuns,
  "0021_chat_budgets": chatBudgets,
  "0022_pages": pages,
  "0023_chat_content_filter": chatContentFilter
}

export const migrations = Migrator.fromRecord(all)

/** The id of the newest migration: what /ready reports once all are applied. */
export const latestMigrationId = Math.max(...Object.keys(all).map((key) => Number.parseInt(key, 10)))

/** How many migrations there are (ids may skip numbers). */
export const migrationCount = Object.keys(all).length
