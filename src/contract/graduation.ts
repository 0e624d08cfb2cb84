// `petri graduate`: the handoff bundle of an app, streamed as a gzip-compressed tar, with
// what it holds named in the answer's headers.
import { Binary } from './common.js';

// The headers live apart, with no schema library: the CLI's client reads them, and loading
// TypeBox for three strings was most of a `petri apps`.
export { GRADUATION_HEADERS } from './graduation-headers.js';

export const GraduationBundle = Binary(
  'NAME-handoff.tar.gz: HANDOFF.md, Dockerfile, data.md, manifests/ (Kubernetes), backups/ (the add-ons) and slug/ (the build)',
  'application/gzip',
);
