// Turning free-form names (folder names, PM2 app names, Procfile process types) into names
// deploygen accepts: lower-case letters, digits and single dashes, starting with a letter.

export function normaliseName(value: string): string {
  let name = value
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (name !== "" && !/^[a-z]/.test(name)) name = `app-${name}`;
  return name.slice(0, 40).replace(/-+$/, "");
}
