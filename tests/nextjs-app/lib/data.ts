import { readFileSync } from 'node:fs';

/** The site's data, read at render time from the JSON file named by FIXTURE_DATA_FILE (the
 * test rewrites that file to change the data); `build` when there is none (at `next build`). */
export interface Data {
  home: string;
  products: Record<string, string>;
  posts?: Record<string, string>;
}

export function readData(): Data {
  const file = process.env.FIXTURE_DATA_FILE;
  if (file) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Data;
    } catch {
      // fall through to the build-time data
    }
  }
  return { home: 'build', products: { a: 'build', b: 'build' }, posts: { first: 'build' } };
}
