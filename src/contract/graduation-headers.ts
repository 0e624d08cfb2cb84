// The headers of `petri graduate`'s answer (contract/graduation.ts), apart from its schema so
// that the CLI's client does not load TypeBox for them.

/** The answer's headers: the release the bundle is of, the app's stage after the request, and
 * the backup of each add-on in it (`postgres=b12 fresh, cache=b9 earlier`). */
export const GRADUATION_HEADERS = {
  release: 'petri-release',
  stage: 'petri-stage',
  backups: 'petri-backups',
} as const;
