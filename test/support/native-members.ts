// Shared by the tests that run engine members in the jest process through the addon.
import type { NativeMember } from '../../native/index.js';

export const TIMEOUT_MS = 20_000;

/** Polls `done` every 10 ms; throws, saying what and `describe()`, after TIMEOUT_MS. */
export async function until(what: string, done: () => boolean, describe: () => string): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${TIMEOUT_MS} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Members a test created; the returned `track` records one, and each test's end stops them. */
export function stopMembersAfterEach(): (member: NativeMember) => NativeMember {
  let created: NativeMember[] = [];
  afterEach(async () => {
    const members = created;
    created = [];
    await Promise.all(members.map((m) => m.stop()));
  });
  return (member) => {
    created.push(member);
    return member;
  };
}
