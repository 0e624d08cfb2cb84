// A build plan: the steps to run in the sandbox and the process types of the result. Plans
// are plain data made by detectors (detect → plan → run, as Railpack does), so they can be
// checked without running anything.

export interface BuildStep {
  /** Shown in the build output, e.g. "Installing dependencies (npm ci)". */
  title: string;
  argv: string[];
  env?: Record<string, string>;
  /** Installs dependencies: skipped when the build cache has them under the same key. */
  installs?: boolean;
}

import type { DependencyCache } from './cache.js';

export interface BuildPlan {
  stack: string;
  steps: BuildStep[];
  /** Process type -> shell command, run in /app. */
  processTypes: Record<string, string>;
  /** Environment every process of the release gets, besides config and PORT. */
  env: Record<string, string>;
  /** The Procfile's release: command (migrations), run once per release before traffic. */
  releaseCommand?: string;
  /** From petri.toml: the path that must answer 2xx/3xx before an instance gets traffic. */
  healthPath?: string;
  /** From petri.toml: the hosts the app may reach through the egress proxy. */
  egress?: string[];
  /** From petri.toml: the experiment's description, data class, privacy note and retention
   * (only the keys it gives), applied to the app at deploy. */
  describe?: { description?: string; data?: string; privacy?: string; retention?: string | number };
  /** From petri.toml: the app's audience (public, staff, invite), applied at deploy. */
  audience?: string;
  /** What the install steps produce and what decides it, for the build cache. */
  dependencies?: DependencyCache;
  /** Runs on a Node.js of Petri's runtime cache: package.json's engines.node range, if any
   * (undefined: the newest LTS on offer). The builder chooses and installs the version. */
  node?: { range?: string };
}

export interface StackDetector {
  readonly name: string;
  /** A plan when the source is of this stack, undefined when it is not. */
  detect(sourceDir: string): Promise<BuildPlan | undefined>;
}
