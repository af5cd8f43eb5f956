// Compiled templates embedded by the bundle. From src/ (tsc, vitest) the table is empty and
// render.ts compiles templates at run time; src/build/bundle.mjs replaces this module with one
// entry per template file, keyed by the template's exact text, so an edited template that was
// not rebuilt is still compiled from its current text.

/** A compiled template as Handlebars.precompile emits it (an object of functions). */
export type TemplateSpec = object;

export const PRECOMPILED_TEMPLATES: ReadonlyArray<readonly [source: string, spec: TemplateSpec]> = [];
