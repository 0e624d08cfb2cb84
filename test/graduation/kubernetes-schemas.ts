// Checks a rendered manifest against the Kubernetes API's own schemas, as the kubernetes-models
// package generates them from the API's OpenAPI document (its validate() runs them), after
// reading its YAML back both as YAML 1.2 and as YAML 1.1, the flavour kubectl reads: the two
// must agree with each other and with the object the renderer meant.
import assert from 'node:assert/strict';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { parse } from 'yaml';

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment,
  'batch/v1 Job': Job,
  'networking.k8s.io/v1 Ingress': Ingress,
  'networking.k8s.io/v1 NetworkPolicy': NetworkPolicy,
  'v1 Secret': Secret,
  'v1 Service': Service,
};

/** The manifest's YAML as kubectl would read it; throws when a reader disagrees. */
export function readManifest(text: string): Record<string, unknown> {
  const core = parse(text, { version: '1.2', strict: true, uniqueKeys: true });
  const old = parse(text, { version: '1.1', strict: true, uniqueKeys: true });
  assert.deepEqual(old, core, 'YAML 1.1 and 1.2 read the manifest differently');
  return core as Record<string, unknown>;
}

/** Validates a manifest object against its kind's schema; throws with the schema's errors. */
export function validateManifest(object: Record<string, unknown>): void {
  const key = `${object.apiVersion} ${object.kind}`;
  const Model = MODELS[key];
  if (!Model) throw new Error(`no schema for ${key} in this test: add its model`);
  new Model(object as never).validate();
}
