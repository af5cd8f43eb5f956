// Splitting a command line into words the way a POSIX shell would, for the simple commands found
// in PM2 `args` strings and Procfiles. Anything a shell would do more with (pipes, expansions
// other than $PORT, redirections) is reported, so that the caller runs it through /bin/sh.

export interface SplitCommand {
  words: string[];
  /** True when the line uses shell syntax beyond quoting and $PORT: it must run through a shell. */
  needsShell: boolean;
}

export function splitCommand(line: string): SplitCommand {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let needsShell = false;
  let quote: "'" | '"' | undefined;
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else current += char;
      continue;
    }
    if (quote === '"') {
      if (char === '"') quote = undefined;
      else if (char === "\\" && index + 1 < line.length && '$`"\\'.includes(line[index + 1]!)) current += line[++index];
      else {
        if (char === "`") needsShell = true;
        current += char;
      }
      continue;
    }
    if (char === "#" && !inWord) break; // a comment: the rest of the line is not part of the command
    if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === "\\" && index + 1 < line.length) {
      current += line[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else {
      if ("|&;<>()`*?[]".includes(char) || (char === "~" && !inWord)) needsShell = true;
      current += char;
      inWord = true;
    }
  }
  if (quote) needsShell = true;
  if (inWord) words.push(current);
  // Variables other than $PORT (which deploygen turns into the app's port) need a shell to expand.
  if (words.some((word) => word.replace(/\$\{PORT\}|\$PORT\b/g, "").includes("$"))) needsShell = true;
  return { words, needsShell };
}

/** Replaces $PORT / ${PORT} inside a word with deploygen's "{port}" placeholder. */
export function portPlaceholder(word: string): string {
  return word.replace(/\$\{PORT\}|\$PORT\b/g, "{port}");
}

export function mentionsPort(word: string): boolean {
  return /\$\{PORT\}|\$PORT\b/.test(word);
}
