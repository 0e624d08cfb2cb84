// `petri graduate`: the handoff bundle of an app, streamed as a gzip-compressed tar, with
// what it holds named in the answer's headers.
import { Binary } from './common.js';

/** The answer's headers: the release the bundle is of, the app's stage after the request, and
 * the backup of each add-on in it (`postgres=b12 fresh, cache=b9 earlier`). */
export const GRADUATION_HEADERS = {
  release: 'petri-release',
  stage: 'petri-stage',
  backups: 'petri-backups',
} as const;

export const GraduationBundle = Binary(
  'NAME-handoff.tar.gz: HANDOFF.md, Dockerfile, data.md, manifests/ (Kubernetes), backups/ (the add-ons) and slug/ (the build)',
  'application/gzip',
);
