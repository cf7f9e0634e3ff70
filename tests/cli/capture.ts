// What the CLI's main() writes, captured: pass `io` to main(), read it back
// with out() and err().

/** Captured standard output and error of the CLI. */
export function capture(): {
  io: { stdout: (t: string) => void; stderr: (t: string) => void };
  out: () => string;
  err: () => string;
} {
  let out = "";
  let err = "";
  return {
    io: { stdout: (t: string) => void (out += t), stderr: (t: string) => void (err += t) },
    out: () => out,
    err: () => err,
  };
}
