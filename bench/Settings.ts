/** A benchmark's settings, read from the environment; a bad one ends the run with one line (exit 2). */

/** A whole number greater than 0 from `name`, else `fallback` when it is unset or empty. */
export const positiveInt = (name: string, fallback: number): number => {
  const text = process.env[name]
  if (text === undefined || text.trim() === "") return fallback
  const value = Number(text)
  if (!(value > 0) || !Number.isInteger(value)) {
    process.stderr.write(`bench: ${name} must be a whole number greater than 0, got "${text}"\n`)
    process.exit(2)
  }
  return value
}
