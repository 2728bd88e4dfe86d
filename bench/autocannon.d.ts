/** The part of autocannon's programmatic API the benchmark uses (the package ships no types). */
declare module "autocannon" {
  export interface Options {
    readonly url: string
    readonly connections?: number
    /** Seconds. */
    readonly duration?: number
    readonly pipelining?: number
    /** Seconds before a request counts as timed out. */
    readonly timeout?: number
    /** Sent with every request. */
    readonly headers?: Record<string, string>
  }

  /** Percentiles of a histogram, as autocannon reports them (p2_5 is the 2.5th percentile). */
  export interface Histogram {
    readonly average: number
    readonly mean: number
    readonly stddev: number
    readonly min: number
    readonly max: number
    readonly p50: number
    readonly p90: number
    readonly p99: number
    readonly p99_9: number
  }

  export interface Result {
    /** Latency of each 2xx response, in whole milliseconds. */
    readonly latency: Histogram
    /** Requests completed per second, one sample a second. */
    readonly requests: Histogram & { readonly total: number; readonly sent: number }
    readonly errors: number
    readonly timeouts: number
    readonly non2xx: number
    readonly statusCodeStats: Readonly<Record<string, { readonly count: number }>>
  }

  /** Runs the load; the returned tracker is thenable and resolves with the result. */
  export default function autocannon(options: Options): PromiseLike<Result>
}
