/**
 * English words that say little about what a text is about (stop words), and a folding of
 * inflections (installing, installed, installs → install). Not a real stemmer: Porter's is ten
 * times the size; this is only enough that the common forms of a word meet.
 */

export const englishStopWords: ReadonlySet<string> = new Set(
  (
    "a about above after again against all am an and any are as at be because been before being below " +
    "between both but by can could did do does doing down during each few for from further had has have " +
    "having he her here hers herself him himself his how i if in into is it its itself just me more most " +
    "my myself no nor not now of off on once only or other our ours ourselves out over own same she " +
    "should so some such than that the their theirs them themselves then there these they this those " +
    "through to too under until up very was we were what when where which while who whom why will with " +
    "would you your yours yourself yourselves"
  ).split(" ")
)

const asciiLetters = /^[a-z]+$/

/**
 * `word` (lower case) without its plural and the first of `suffixes` it ends with (keeping a stem
 * of three letters at least), a final e, and a doubled final consonant (running → run).
 */
export const foldInflections = (word: string, suffixes: ReadonlyArray<string>): string => {
  if (word.length <= 3 || !asciiLetters.test(word)) return word
  let stem = word
  if (stem.endsWith("ies") && stem.length > 4) stem = `${stem.slice(0, -3)}y`
  else if (stem.endsWith("sses")) stem = stem.slice(0, -2)
  else if (stem.endsWith("s") && !/(?:ss|us|is)$/.test(stem)) stem = stem.slice(0, -1)
  for (const suffix of suffixes) {
    if (stem.endsWith(suffix) && stem.length - suffix.length >= 3) {
      stem = stem.slice(0, -suffix.length)
      break
    }
  }
  if (stem.length > 3 && stem.endsWith("e")) stem = stem.slice(0, -1)
  const last = stem.length - 1
  if (stem.length > 3 && stem[last] === stem[last - 1] && !"aeioulsz".includes(stem[last]!)) stem = stem.slice(0, -1)
  return stem
}
