// The control plane's components in one list: each is started when it is added, in the order
// of the composition root, and stopped in the reverse order, each stop awaited and timed, so
// what a component uses (the store first of all) outlives it. A stop that fails is logged and
// does not skip the others; a start that fails stops what was already started.
import { errorMessage } from './errors.js';

/** The part of pino's Logger this needs. */
export interface LifecycleLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface Component {
  start(): unknown;
  stop(): unknown;
}

interface Started {
  name: string;
  stop: () => Promise<void>;
}

export class Lifecycle {
  private readonly started: Started[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly logger: LifecycleLogger) {}

  /** Starts a component now and keeps its stop for later; resolves with what `start` made.
   * A component with no stop (the router, which keeps serving the apps while the control
   * plane is down) is listed all the same, so the order reads in one place. If `start`
   * throws, the components started before it are stopped and the error is thrown on. */
  add<T>(name: string, start: () => T | Promise<T>, stop?: (started: T) => unknown): Promise<T>;
  /** A component that starts and stops itself (a loop). */
  add(name: string, component: Component): Promise<void>;
  async add<T>(
    name: string,
    start: Component | (() => T | Promise<T>),
    stop?: (started: T) => unknown,
  ): Promise<T | undefined> {
    if (typeof start !== 'function') {
      const component = start;
      await this.add(
        name,
        () => component.start(),
        () => component.stop(),
      );
      return undefined;
    }
    if (this.stopping) throw new Error(`cannot start ${name}: the control plane is stopping`);
    let value: T;
    try {
      value = await start();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.started.push({ name, stop: async () => void (await stop?.(value)) });
    return value;
  }

  /** Stops every component started, last first, each awaited; a second call waits for the
   * first. Resolves once all are stopped, even when some failed (each failure is logged). */
  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    for (const { name, stop } of this.started.splice(0).reverse()) {
      const from = performance.now();
      try {
        await stop();
        this.logger.info({ component: name, ms: Math.round(performance.now() - from) }, 'stopped');
      } catch (err) {
        this.logger.error(
          { component: name, ms: Math.round(performance.now() - from), err: errorMessage(err) },
          'stop failed; stopping the others',
        );
      }
    }
  }
}
