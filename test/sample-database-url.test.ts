import { runSampleApp } from './support/processes';

const PASSWORD = 'S3cret-Pa55';

describe('The sample app given a malformed DATABASE_URL', () => {
  it.concurrent.each([
    [`postgres//app:${PASSWORD}@db.internal/app`, 'DATABASE_URL lacks the ":" of "postgres://"'],
    [`postgres://app:${PASSWORD}@[::1/app`, 'DATABASE_URL is not a valid postgres:// URL.'],
    [`mysql://app:${PASSWORD.replace('-', '#')}@db.internal/app`, 'DATABASE_URL is not a valid mysql:// URL.'],
    [`postgres:/app:${PASSWORD}@db.internal/app`, 'DATABASE_URL lacks the "//" of "postgres://"'],
  ])('%s: stops at start-up, saying what is wrong, without showing the password', async (url, problem) => {
    const finished = await runSampleApp({ env: { DATABASE_URL: url, PORT: '0' } });
    expect(finished).toMatchObject({ code: 1, stdout: '' });
    expect(finished.stderr).toContain(problem);
    // Either half, as the password with a "#" in the middle is cut in two.
    for (const half of PASSWORD.split('-')) expect(finished.stderr).not.toContain(half);
  });
});
