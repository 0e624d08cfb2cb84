// The client's public face: import from here, not from the files behind it.

export {
  type DeployBody,
  type LogsOptions,
  PetriClient,
  type PetriClientOptions,
  type StreamOptions,
} from './client.js';
export { ApiError, ConnectionError } from './errors.js';
export { parseNdjson } from './ndjson.js';
export * from './types.js';
