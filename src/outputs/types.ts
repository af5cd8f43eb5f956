import type { ResolvedProject, ResolvedEnvironment } from "../model.js";
import type { Renderer } from "../render.js";

/** One generated file, relative to the output folder. */
export interface FileOutput {
  /** Relative to the output folder, "/"-separated and normalized (no empty, "." or ".." parts): the writer joins it by concatenation. */
  path: string;
  content: string;
  /** 0o755 for scripts, 0o644 for everything else. */
  mode: number;
}

export type OutputBuilder = (project: ResolvedProject, environment: ResolvedEnvironment, renderer: Renderer) => FileOutput[];
