// The handoff bundle of a graduating app, as plain data in and text out: what the service
// gathered from the store and the slug (BundleInput), and the files it becomes (Dockerfile,
// Kubernetes manifests, data.md, HANDOFF.md). Pure, so each file is checked against a
// golden copy; the service adds the slug and the add-on backups beside them.
import { renderDataMd } from './data-md.js';
import { renderDockerfile } from './dockerfile.js';
import { renderHandoff } from './handoff.js';
import type { BundleFile, BundleInput } from './input.js';
import { renderManifests } from './kubernetes.js';

/** Every generated file of the bundle, in the order they go into it. */
export function renderBundle(input: BundleInput): BundleFile[] {
  const manifests = renderManifests(input);
  const files: BundleFile[] = [
    { path: 'HANDOFF.md', text: '' },
    { path: 'Dockerfile', text: renderDockerfile(input) },
    { path: '.dockerignore', text: DOCKERIGNORE },
    { path: 'data.md', text: renderDataMd(input) },
    ...manifests.map((m) => ({ path: m.path, text: m.text })),
  ];
  // HANDOFF.md lists the bundle's files, so it is written last (and stays first in the bundle).
  files[0] = {
    path: 'HANDOFF.md',
    text: renderHandoff(
      input,
      files.slice(1).map((f) => f.path),
    ),
  };
  return files;
}

// The image needs only the slug: the backups and the paperwork stay out of it.
const DOCKERIGNORE = '*\n!slug\n';
