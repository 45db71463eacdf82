import { checkSnippets, documentationPages, extractSnippets, formatProblem, readPage, SnippetProblem } from './support/documentation-snippets';

/**
 * Every TypeScript block of the README and of the guides in docs/ compiles as written, against the
 * package's source, with the project's compiler options: a reader can paste any of them. A block is
 * a module of its own; one that starts with a comment naming a file (`// app.module.ts`) can be
 * imported by the other blocks of its page (`import { AppModule } from './app.module'`).
 */
describe('documentation snippets', () => {
  const pages = documentationPages();
  const snippets = pages.flatMap((page) => extractSnippets(page, readPage(page)));
  // A page with mistakes, checked in the same program: the check must find them, and say where.
  const mistake = extractSnippets(
    'mistake.md',
    [
      '# A page with mistakes',
      '',
      '```ts',
      "import { LockService } from 'nestjs-lockmgr';",
      '',
      'declare const locks: LockService;',
      'void locks.writeReport();',
      '```',
      '',
      '- in a list:',
      '  ```typescript',
      "  import { LockMgrModule } from 'nestjs-lockmgr';",
      '  LockMgrModule.forRoot({ tablename: 123 });',
      '  ```',
      '',
    ].join('\n'),
  );
  let problems: SnippetProblem[];
  let globalProblems: string[];

  beforeAll(() => {
    ({ problems, globalProblems } = checkSnippets([...snippets, ...mistake]));
  });

  it('finds the blocks of the README and of every guide', () => {
    expect(pages).toContain('docs/api.md');
    for (const page of ['README.md', 'docs/api.md', 'docs/decorators.md', 'docs/testing.md']) {
      expect(snippets.filter((snippet) => snippet.page === page).length).toBeGreaterThan(0);
    }
  });

  it('compiles with the project options and types', () => {
    expect(globalProblems).toEqual([]);
  });

  it.each(pages)('%s: every TypeScript block compiles', (page) => {
    expect(problems.filter((problem) => problem.snippet.page === page).map(formatProblem)).toEqual([]);
  });

  it('names the page, the line and the diagnostic of a block that does not compile', () => {
    const found = problems.filter((problem) => problem.snippet.page === 'mistake.md').map(formatProblem);
    expect(found).toEqual([
      "mistake.md:7 (block at line 3): error TS2339: Property 'writeReport' does not exist on type 'LockService'.",
      expect.stringMatching(/^mistake\.md:13 \(block at line 11\): error TS2561: .*'tablename' does not exist in type 'LockMgrModuleOptions/),
    ]);
  });

  it('refuses a page whose block is never closed, or whose blocks name one file twice', () => {
    expect(() => extractSnippets('open.md', 'text\n```ts\nconst a = 1;\n')).toThrow('open.md:2: the block opened here is never closed.');
    const twice = '```ts\n// main.ts\nexport {};\n```\n\n```ts\n// main.ts\nexport {};\n```\n';
    expect(() => extractSnippets('twice.md', twice)).toThrow('twice.md:6: a second block names itself main.ts');
  });
});
