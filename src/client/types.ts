// The shapes the Petri API answers with, as the CLI and the dashboard see them.
// They mirror the API contract; the server owns the truth, so nothing here adds defaults.

export type AppStatus = 'new' | 'deploying' | 'running' | 'crashed' | 'down';
export type ProcessState = 'starting' | 'up' | 'crashed' | 'stopping';
export type DeployStatus = 'queued' | 'building' | 'releasing' | 'succeeded' | 'failed';

export interface Limits {
  memoryMiB: number;
  cpus: number;
  pids: number;
}

export interface AppProcess {
  /** Process type and index, e.g. web.1. */
  name: string;
  state: ProcessState;
  port: number | null;
  startedAt: string | null;
  restarts: number;
}

export interface App {
  name: string;
  url: string;
  owner: string;
  createdAt: string;
  status: AppStatus;
  /** The release serving now, e.g. 'v3'; null before the first deploy. */
  release: string | null;
  limits: Limits;
  processes: AppProcess[];
}

export interface AppUpdate {
  limits?: Partial<Limits>;
}

export interface Deploy {
  id: string;
  app: string;
  status: DeployStatus;
  release: string | null;
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  url: string;
}

export interface User {
  name: string;
  role: string;
}

/** A line of build or release output while a deploy runs. */
export interface DeployLogEvent {
  type: 'log';
  time: string;
  source: string;
  text: string;
}

/** The last event of a deploy stream: the deploy in its final state. */
export interface DeployEndEvent {
  type: 'end';
  deploy: Deploy;
}

export type DeployEvent = DeployLogEvent | DeployEndEvent;

export interface LogLine {
  time: string;
  /** Where the line came from: a process (web.1), build, release, router... */
  source: string;
  text: string;
}

export const TERMINAL_DEPLOY_STATUSES: readonly DeployStatus[] = ['succeeded', 'failed'];
