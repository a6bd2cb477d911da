/** A logfmt line (cemetery-audit's format) as an object: quoted values JSON-unescaped. */
export const parseLogfmt = (line: string): Record<string, string> =>
  Object.fromEntries([...line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map(([, k, v]) => [k, v.startsWith('"') ? (JSON.parse(v) as string) : v]));
