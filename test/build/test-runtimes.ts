// The runtime cache every test Petri and the runtime tests share, kept between runs (set
// PETRI_TEST_RUNTIMES to keep it elsewhere, e.g. in a CI cache): a Node.js version is
// downloaded once per machine, not once per test server (about 50 MB and seconds each).
import { tmpdir } from 'node:os';
import path from 'node:path';

export const TEST_RUNTIMES = process.env.PETRI_TEST_RUNTIMES ?? path.join(tmpdir(), 'petri-test-runtimes');
