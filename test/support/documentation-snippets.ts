import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import * as ts from 'typescript';

/** The repository's root, which the snippets' imports resolve from. */
export const REPOSITORY = join(__dirname, '..', '..');

/** Where the blocks live as files: a folder no real file is in, so a block can never shadow one. */
const SNIPPETS_FOLDER = join(REPOSITORY, 'documentation-snippets');

/** What a user imports, and the source the snippets are checked against. */
const PACKAGE_PATHS = {
  'nestjs-lockmgr': ['lib/index.ts'],
  'nestjs-lockmgr/testing': ['lib/testing/index.ts'],
};

/** The languages of the fences that are checked; other blocks (bash, sql, json, …) are not TypeScript. */
const TYPESCRIPT_FENCES = new Set(['ts', 'typescript']);

/** A block that starts with `// report.service.ts` is that file, so the other blocks of its page can import it. */
const FILE_NAME_COMMENT = /^\/\/ ([\w.-]+\.ts)\s*$/;

/** One TypeScript block of a Markdown page. */
export interface Snippet {
  /** The page, relative to the repository: `README.md`, `docs/api.md`. */
  page: string;
  /** The line of the page that opens the block (its fence). */
  fenceLine: number;
  /** The block as a module of its own, beside the page's other blocks. */
  fileName: string;
  code: string;
}

/** The Markdown pages whose TypeScript blocks must compile: the README and the guides in `docs/`. */
export function documentationPages(): string[] {
  const guides = readdirSync(join(REPOSITORY, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...guides];
}

/** The TypeScript blocks of one page, in order. Throws on a block left open or two blocks naming one file. */
export function extractSnippets(page: string, markdown: string): Snippet[] {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  let open: { fence: string; language: string; line: number; body: string[] } | undefined;
  lines.forEach((line, index) => {
    if (!open) {
      // Indented fences too: a block inside a list item is checked like any other.
      const start = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(line);
      if (start) open = { fence: start[1], language: start[2].toLowerCase(), line: index + 1, body: [] };
      return;
    }
    if (line.trim() !== open.fence) {
      open.body.push(line);
      return;
    }
    if (TYPESCRIPT_FENCES.has(open.language)) {
      const named = FILE_NAME_COMMENT.exec(open.body[0] ?? '');
      const name = named ? named[1] : `line-${open.line}.ts`;
      if (snippets.some((snippet) => posix.basename(snippet.fileName) === name)) {
        throw new Error(`${page}:${open.line}: a second block names itself ${name}; each file name is used once per page.`);
      }
      snippets.push({ page, fenceLine: open.line, fileName: posix.join(SNIPPETS_FOLDER, page, name), code: open.body.join('\n') });
    }
    open = undefined;
  });
  if (open) throw new Error(`${page}:${open.line}: the block opened here is never closed.`);
  return snippets;
}

/** The project's compiler options, with the package's import paths pointing at its source. */
function compilerOptions(): ts.CompilerOptions {
  const configPath = join(REPOSITORY, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  if (config.error) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, '\n'));
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, REPOSITORY, undefined, configPath);
  return {
    ...options,
    noEmit: true,
    declaration: false,
    sourceMap: false,
    inlineSources: false,
    // A block is a module even if it neither imports nor exports: blocks never see each other's names.
    moduleDetection: ts.ModuleDetectionKind.Force,
    baseUrl: REPOSITORY,
    paths: PACKAGE_PATHS,
  };
}

/** A diagnostic of a block, placed on the line of the page it points at. */
export interface SnippetProblem {
  snippet: Snippet;
  /** The line of the page the diagnostic points at (the fence's line when it points at no line). */
  line: number;
  message: string;
}

/**
 * Compiles every snippet in one TypeScript program (the blocks as files that exist only in memory,
 * imports resolved as for a user of the package) and returns the diagnostics of the blocks, with
 * those of the options and the global types.
 */
export function checkSnippets(snippets: Snippet[]): { problems: SnippetProblem[]; globalProblems: string[] } {
  const options = compilerOptions();
  const byFile = new Map(snippets.map((snippet) => [snippet.fileName, snippet]));
  const folders = new Set(snippets.map((snippet) => posix.dirname(snippet.fileName)));
  const host = ts.createCompilerHost(options, true);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const directoryExists = host.directoryExists?.bind(host) ?? ts.sys.directoryExists;
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const snippet = byFile.get(fileName);
    if (snippet) return ts.createSourceFile(fileName, snippet.code, languageVersion, true);
    return getSourceFile(fileName, languageVersion, onError, shouldCreate);
  };
  host.fileExists = (fileName) => byFile.has(fileName) || fileExists(fileName);
  // Module resolution looks for `./report.service` only in a folder that exists.
  host.directoryExists = (folder) => folders.has(folder) || directoryExists(folder);
  host.readFile = (fileName) => byFile.get(fileName)?.code ?? readFile(fileName);

  const program = ts.createProgram({ rootNames: [...byFile.keys()], options, host });
  const describe = (diagnostic: ts.Diagnostic) =>
    `error TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
  const globalProblems = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()].map(describe);
  const problems: SnippetProblem[] = [];
  for (const snippet of snippets) {
    const sourceFile = program.getSourceFile(snippet.fileName)!;
    for (const diagnostic of [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)]) {
      const lineInBlock = diagnostic.start === undefined ? undefined : sourceFile.getLineAndCharacterOfPosition(diagnostic.start).line;
      problems.push({
        snippet,
        line: lineInBlock === undefined ? snippet.fenceLine : snippet.fenceLine + 1 + lineInBlock,
        message: describe(diagnostic),
      });
    }
  }
  return { problems, globalProblems };
}

/** `docs/api.md:57 (block at line 52): error TS2339: …`: where to look, and what is wrong. */
export function formatProblem({ snippet, line, message }: SnippetProblem): string {
  return `${snippet.page}:${line} (block at line ${snippet.fenceLine}): ${message}`;
}

export function readPage(page: string): string {
  return readFileSync(join(REPOSITORY, page), 'utf8');
}
