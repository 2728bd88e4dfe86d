/**
 * A retrieval test collection in the BEIR layout (../shared/datasets, see its README) and the
 * two measures reported on it, computed as trec_eval does: nDCG@10 with linear gain (grade g at
 * rank r adds g / log2(r + 1)) and Recall@100, averaged over the judged queries.
 */
import { existsSync, readFileSync } from "node:fs"
import { basename, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

export interface CollectionDocument {
  readonly _id: string
  readonly title: string
  readonly text: string
}

export interface RetrievalCollection {
  readonly name: string
  readonly corpus: ReadonlyArray<CollectionDocument>
  /** Only the judged queries (those in qrels/test.tsv). */
  readonly queries: ReadonlyArray<{ readonly _id: string; readonly text: string }>
  /** query id → document id → grade (> 0 relevant). */
  readonly qrels: ReadonlyMap<string, ReadonlyMap<string, number>>
}

/** The plain BM25 run of the datasets README: nDCG@10 / R@100. */
export const bm25Reference: Readonly<Record<string, { readonly ndcg10: number; readonly recall100: number }>> = {
  cranfield: { ndcg10: 0.3515, recall100: 0.7213 },
  cisi: { ndcg10: 0.3582, recall100: 0.423 },
  cacm: { ndcg10: 0.4662, recall100: 0.6345 },
  med: { ndcg10: 0.6706, recall100: 0.7719 }
}

const datasetsRoot = fileURLToPath(new URL("../../shared/datasets/", import.meta.url))

/** `nameOrFolder`: a folder, or a name under ../shared/datasets. */
export const collectionFolder = (nameOrFolder: string) => {
  const direct = resolve(nameOrFolder)
  return existsSync(join(direct, "corpus.jsonl")) ? direct : join(datasetsRoot, nameOrFolder)
}

const jsonLines = <A>(file: string): Array<A> =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as A)

export const loadCollection = (nameOrFolder: string): RetrievalCollection => {
  const folder = collectionFolder(nameOrFolder)
  const qrels = new Map<string, Map<string, number>>()
  const lines = readFileSync(join(folder, "qrels", "test.tsv"), "utf8")
    .split("\n")
    .slice(1)
  for (const line of lines) {
    const [queryId, documentId, score] = line.trim().split("\t")
    if (queryId === undefined || documentId === undefined || score === undefined) continue
    const judged = qrels.get(queryId) ?? new Map<string, number>()
    judged.set(documentId, Number(score))
    qrels.set(queryId, judged)
  }
  const queries = jsonLines<{ _id: string; text: string }>(join(folder, "queries.jsonl")).filter((query) => qrels.has(query._id))
  return {
    name: basename(folder),
    corpus: jsonLines<CollectionDocument>(join(folder, "corpus.jsonl")),
    queries,
    qrels
  }
}

/** nDCG@10 of one ranking (document ids, best first), trec_eval style. */
export const ndcgAt10 = (ranking: ReadonlyArray<string>, judged: ReadonlyMap<string, number>) => {
  let dcg = 0
  ranking.slice(0, 10).forEach((id, index) => {
    const grade = judged.get(id) ?? 0
    if (grade > 0) dcg += grade / Math.log2(index + 2)
  })
  const ideal = [...judged.values()]
    .filter((grade) => grade > 0)
    .sort((a, b) => b - a)
    .slice(0, 10)
  const idcg = ideal.reduce((sum, grade, index) => sum + grade / Math.log2(index + 2), 0)
  return idcg === 0 ? 0 : dcg / idcg
}

/** Recall@100 of one ranking. */
export const recallAt100 = (ranking: ReadonlyArray<string>, judged: ReadonlyMap<string, number>) => {
  const relevant = [...judged.entries()].filter(([, grade]) => grade > 0).map(([id]) => id)
  if (relevant.length === 0) return 0
  const top = new Set(ranking.slice(0, 100))
  return relevant.filter((id) => top.has(id)).length / relevant.length
}

/** Both measures averaged over the collection's judged queries; `rankings`: query id → ranking. */
export const evaluate = (collection: RetrievalCollection, rankings: ReadonlyMap<string, ReadonlyArray<string>>) => {
  let ndcg = 0
  let recall = 0
  for (const query of collection.queries) {
    const judged = collection.qrels.get(query._id)!
    const ranking = rankings.get(query._id) ?? []
    ndcg += ndcgAt10(ranking, judged)
    recall += recallAt100(ranking, judged)
  }
  const count = Math.max(collection.queries.length, 1)
  return { ndcg10: ndcg / count, recall100: recall / count }
}
