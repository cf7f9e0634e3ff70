/**
 * A workload's `opt=value` options with typed getters whose errors name the
 * option, the value and what was expected.
 *
 * @module
 */

import { WorkloadError } from "./workload.ts";

/** Bounds for {@linkcode WorkloadOptions.integer} and {@linkcode WorkloadOptions.size}. */
export interface OptionBounds {
  /** Smallest accepted value. */
  readonly min?: number;
  /** Largest accepted value. */
  readonly max?: number;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
};

/**
 * The options of one workload run.
 *
 * @example
 * ```ts
 * import { WorkloadOptions } from "./workload_options.ts";
 * import { equal, throws } from "node:assert/strict";
 * const options = new WorkloadOptions({ count: "20", size: "64K", verbose: "on" });
 * equal(options.integer("count", 10, { min: 1 }), 20);
 * equal(options.size("size", 4096), 65536);
 * equal(options.boolean("verbose", false), true);
 * equal(options.string("mode", "pattern"), "pattern");
 * throws(() => options.integer("count", 10, { max: 5 }), /Invalid workload option count=20/);
 * throws(() => options.expectOnly(["count", "size"]), /Unknown workload option 'verbose'/);
 * ```
 */
export class WorkloadOptions {
  /** The raw values. */
  readonly values: Readonly<Record<string, string>>;

  /**
   * Wraps raw options.
   *
   * @param values `opt=value` pairs as strings.
   */
  constructor(values: Readonly<Record<string, string>> = {}) {
    this.values = values;
  }

  /**
   * Whether an option was given.
   *
   * @param name The option.
   * @returns Whether it is present.
   *
   * @example
   * ```ts
   * import { WorkloadOptions } from "./workload_options.ts";
   * import { equal } from "node:assert/strict";
   * const options = new WorkloadOptions({ count: "20" });
   * equal(options.has("count"), true);
   * equal(options.has("size"), false);
   * ```
   */
  has(name: string): boolean {
    return Object.hasOwn(this.values, name);
  }

  /**
   * Fails on any option not in `known` (call it first, so a misspelt option
   * is an error instead of being ignored).
   *
   * @param known The options the workload accepts.
   * @throws {WorkloadError} Naming the first unknown option.
   *
   * @example
   * ```ts
   * import { WorkloadOptions } from "./workload_options.ts";
   * import { doesNotThrow, throws } from "node:assert/strict";
   * const accepted = ["count", "size"];
   * doesNotThrow(() => new WorkloadOptions({ count: "20" }).expectOnly(accepted));
   * throws(
   *   () => new WorkloadOptions({ count: "20", szie: "4K" }).expectOnly(accepted),
   *   /Unknown workload option 'szie' \(accepted: count, size\)/,
   * );
   * ```
   */
  expectOnly(known: readonly string[]): void {
    for (const name of Object.keys(this.values)) {
      if (!known.includes(name)) {
        throw new WorkloadError(
          `Unknown workload option '${name}' (accepted: ${known.join(", ") || "none"})`,
        );
      }
    }
  }

  /**
   * A text option.
   *
   * @param name The option.
   * @param fallback Its value when absent.
   * @param choices When given, the accepted values.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { WorkloadOptions } from "./workload_options.ts";
   * import { equal, throws } from "node:assert/strict";
   * const modes = ["pattern", "random"];
   * equal(new WorkloadOptions({ mode: "random" }).string("mode", "pattern", modes), "random");
   * equal(new WorkloadOptions().string("label", "none"), "none");
   * throws(
   *   () => new WorkloadOptions({ mode: "zeros" }).string("mode", "pattern", modes),
   *   /Invalid workload option mode=zeros: expected one of pattern, random/,
   * );
   * // A default outside the choices is the workload's own mistake, and says so.
   * throws(() => new WorkloadOptions().string("mode", "zeros", modes), /Default 'zeros'/);
   * ```
   */
  string(name: string, fallback: string, choices?: readonly string[]): string {
    if (!this.has(name)) {
      if (choices && !choices.includes(fallback)) {
        throw new Error(
          `Default '${fallback}' of workload option ${name} is not one of ${choices.join(", ")}`,
        );
      }
      return fallback;
    }
    const value = this.values[name]!;
    if (choices && !choices.includes(value)) {
      throw this.#invalid(name, `one of ${choices.join(", ")}`);
    }
    return value;
  }

  /**
   * A whole-number option (decimal or 0x hexadecimal).
   *
   * @param name The option.
   * @param fallback Its value when absent.
   * @param bounds Accepted range.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { WorkloadOptions } from "./workload_options.ts";
   * import { equal, throws } from "node:assert/strict";
   * const options = new WorkloadOptions({ count: "0x10", rounds: "ten" });
   * equal(options.integer("count", 1), 16);
   * equal(options.integer("depth", 4), 4);
   * throws(() => options.integer("count", 1, { min: 1, max: 8 }), /an integer from 1 to 8/);
   * throws(() => options.integer("rounds", 1), /Invalid workload option rounds=ten/);
   * ```
   */
  integer(name: string, fallback: number, bounds: OptionBounds = {}): number {
    if (!this.has(name)) return fallback;
    const text = this.values[name]!.trim();
    const value = /^(0x[0-9a-f]+|\d+)$/i.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(value) || !this.#inBounds(value, bounds)) {
      throw this.#invalid(name, `an integer${this.#range(bounds)}`);
    }
    return value;
  }

  /**
   * A size option in bytes: a whole number with an optional K, M or G suffix
   * (powers of 1024).
   *
   * @param name The option.
   * @param fallback Its value when absent (bytes).
   * @param bounds Accepted range (bytes).
   * @returns Bytes.
   *
   * @example
   * ```ts
   * import { WorkloadOptions } from "./workload_options.ts";
   * import { equal, throws } from "node:assert/strict";
   * const options = new WorkloadOptions({ size: "2M", block: "3x" });
   * equal(options.size("size", 4096), 2 * 1024 * 1024);
   * equal(options.size("chunk", 4096), 4096);
   * throws(() => options.size("size", 4096, { max: 1 << 20 }), /of at most 1048576/);
   * throws(() => options.size("block", 512), /Invalid workload option block=3x/);
   * ```
   */
  size(name: string, fallback: number, bounds: OptionBounds = {}): number {
    if (!this.has(name)) return fallback;
    const m = /^(\d+)([bkmg]?)$/i.exec(this.values[name]!.trim());
    const value = m ? Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]! : NaN;
    if (!Number.isSafeInteger(value) || !this.#inBounds(value, bounds)) {
      throw this.#invalid(
        name,
        `a size in bytes with an optional K/M/G suffix${this.#range(bounds)}`,
      );
    }
    return value;
  }

  /**
   * An on/off option (`on`, `off`, `true`, `false`, `yes`, `no`, `1`, `0`).
   *
   * @param name The option.
   * @param fallback Its value when absent.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { WorkloadOptions } from "./workload_options.ts";
   * import { equal, throws } from "node:assert/strict";
   * const options = new WorkloadOptions({ irq: "yes", verify: "off", trace: "maybe" });
   * equal(options.boolean("irq", false), true);
   * equal(options.boolean("verify", true), false);
   * equal(options.boolean("quiet", false), false);
   * throws(() => options.boolean("trace", false), /trace=maybe: expected on or off/);
   * ```
   */
  boolean(name: string, fallback: boolean): boolean {
    if (!this.has(name)) return fallback;
    const value = this.values[name]!.toLowerCase();
    if (["on", "true", "yes", "1"].includes(value)) return true;
    if (["off", "false", "no", "0"].includes(value)) return false;
    throw this.#invalid(name, "on or off");
  }

  #inBounds(value: number, bounds: OptionBounds): boolean {
    return (bounds.min === undefined || value >= bounds.min) &&
      (bounds.max === undefined || value <= bounds.max);
  }

  #range(bounds: OptionBounds): string {
    if (bounds.min !== undefined && bounds.max !== undefined) {
      return ` from ${bounds.min} to ${bounds.max}`;
    }
    if (bounds.min !== undefined) return ` of at least ${bounds.min}`;
    if (bounds.max !== undefined) return ` of at most ${bounds.max}`;
    return "";
  }

  #invalid(name: string, expected: string): WorkloadError {
    return new WorkloadError(
      `Invalid workload option ${name}=${this.values[name]}: expected ${expected}`,
    );
  }
}
