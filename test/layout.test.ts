import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** madge ships no types; this is the part of its API the check uses. */
const madge: (path: string, config: object) => Promise<{ circular(): string[][] }> = require('madge');

const library = join(__dirname, '..', 'lib');
/** A file longer than this no longer reads in one sitting: split it by what it does. */
const LONGEST_FILE_LINES = 300;

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('The layout of lib/', () => {
  it('has no import cycle, type-only imports included', async () => {
    const graph = await madge(library, { fileExtensions: ['ts'], tsConfig: join(__dirname, '..', 'tsconfig.json') });
    expect(graph.circular()).toEqual([]);
  });

  it(`has no file over ${LONGEST_FILE_LINES} lines`, () => {
    const long = sourceFiles(library)
      .map((file) => ({ file: relative(library, file), lines: readFileSync(file, 'utf8').split('\n').length - 1 }))
      .filter(({ lines }) => lines > LONGEST_FILE_LINES);
    expect(long).toEqual([]);
  });
});
