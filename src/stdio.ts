// Writes to stdout and stderr through their file descriptors. process.stdout and process.stderr
// are streams that Node.js builds on first use, loading its stream (and, for a pipe, net) modules:
// a few milliseconds of a command that takes a few dozen. Writes stay synchronous and in order,
// as process.stdout's are for files and pipes on Linux.
import { fstatSync, writeSync } from "node:fs";
import { isatty } from "node:tty";

export const STDOUT = 1;
export const STDERR = 2;

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of text to fd. A reader that went away (EPIPE) ends the output quietly, as `| head` expects. */
export function writeText(fd: number, text: string): void {
  const bytes = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset, bytes.length - offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EPIPE") return;
      // A non-blocking pipe that is full: wait for the reader, briefly, then try again.
      if (code === "EAGAIN") Atomics.wait(pause, 0, 0, 1);
      else throw error;
    }
  }
}

/** Whether fd is a terminal. Pipes and files (CI, hooks) are told apart without node:tty (which the bundle loads on first use). */
export function isTerminal(fd: number): boolean {
  try {
    if (!fstatSync(fd).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  return isatty(fd);
}

/** Columns of the terminal on stdout, if it is one (process.stdout is only built then). */
export function terminalColumns(): number | undefined {
  return isTerminal(STDOUT) ? process.stdout.columns : undefined;
}
