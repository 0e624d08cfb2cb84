// An app's metrics over 1 h, 24 h or 7 d (GET /v1/apps/NAME/metrics): requests by status
// class, latency percentiles, memory against the limit and CPU time, as uPlot charts, with
// the totals as text beside them (a chart is a picture; the figures are what is read).
// Loaded when the tab opens: uPlot is not in the initial JavaScript.
import { useQuery } from '@tanstack/react-query';
import { Fragment, useEffect, useId, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { App, AppMetrics } from '../../client/types.js';
import { client, errorText } from '../api.js';
import { series } from '../logic.js';

const PERIODS = ['1h', '24h', '7d'] as const;

export default function MetricsTab({ app }: { app: App }) {
  const id = useId();
  const [since, setSince] = useState<(typeof PERIODS)[number]>('1h');
  const metrics = useQuery({
    queryKey: ['metrics', app.name, since],
    queryFn: () => client.appMetrics(app.name, since),
    refetchInterval: 60_000,
  });
  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Metrics</h2>
      <div className="inline">
        <label htmlFor={`${id}-since`}>Period</label>
        <select id={`${id}-since`} value={since} onChange={(e) => setSince(e.target.value as typeof since)}>
          {PERIODS.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </div>
      {metrics.isPending && <p className="loading">Loading metrics…</p>}
      {metrics.isError && (
        <p role="alert" className="error">
          Could not read the metrics: {errorText(metrics.error)}
        </p>
      )}
      {metrics.data && <Charts data={metrics.data} />}
    </section>
  );
}

function Charts({ data }: { data: AppMetrics }) {
  const { totals } = data;
  const s = series(data.points);
  // The x axis spans the period asked for, whatever the points: one point is not years wide.
  const span: [number, number] = [Date.parse(data.since) / 1000, Date.now() / 1000];
  return (
    <>
      <dl className="facts">
        <dt>Requests</dt>
        <dd>
          {totals.requests} ({totals.s2xx} 2xx, {totals.s3xx} 3xx, {totals.s4xx} 4xx, {totals.s5xx} 5xx)
        </dd>
        <dt>Latency</dt>
        <dd>
          {totals.p50Ms === null
            ? 'no request'
            : `p50 ≤ ${totals.p50Ms} ms, p95 ≤ ${totals.p95Ms} ms, p99 ≤ ${totals.p99Ms} ms`}
        </dd>
        <dt>Memory (highest)</dt>
        <dd>
          {Math.round(totals.memoryMaxBytes / 1_048_576)} MiB, all processes (limit {data.limits.memoryMiB}{' '}
          MiB each)
        </dd>
        <dt>CPU time</dt>
        <dd>{(totals.cpuMs / 1000).toFixed(1)} s</dd>
        {/* Per process type: the highest one process against its own limit, which is the
            figure that says how close a type came to being killed for memory. */}
        {data.processTypes.map((t) => (
          <Fragment key={t.type}>
            <dt>{t.type} memory</dt>
            <dd>
              {Math.round(t.memoryMaxBytes / 1_048_576)} MiB of {t.memoryLimitMiB} MiB
              {t.instances > 1 ? ` (highest of ${t.instances})` : ''}
            </dd>
            <dt>{t.type} CPU</dt>
            <dd>
              {(t.cpuMs / 1000).toFixed(1)} s
              {t.cpuLimitMs > 0
                ? `, ${Math.max(1, Math.round((t.cpuMs / t.cpuLimitMs) * 100))}% of its limit`
                : ''}
            </dd>
          </Fragment>
        ))}
        <dt>Restarts</dt>
        <dd>
          {totals.restarts}
          {totals.oomKills > 0 && `, ${totals.oomKills} for memory`}
        </dd>
      </dl>
      {data.points.length === 0 ? (
        <p>Nothing measured in this period yet.</p>
      ) : (
        <div className="grid">
          <Chart
            title="Requests per minute by status"
            x={s.x}
            span={span}
            lines={[
              { label: '2xx', values: s.s2xx, color: '#1a7f37' },
              { label: '3xx', values: s.s3xx, color: '#0b5cad' },
              { label: '4xx', values: s.s4xx, color: '#8a5a00' },
              { label: '5xx', values: s.s5xx, color: '#b42318' },
            ]}
          />
          <Chart
            title="Latency (ms)"
            x={s.x}
            span={span}
            lines={[
              { label: 'p50', values: s.p50, color: '#1a7f37' },
              { label: 'p95', values: s.p95, color: '#8a5a00' },
              { label: 'p99', values: s.p99, color: '#b42318' },
            ]}
          />
          <Chart
            title={`Memory (MiB, limit ${data.limits.memoryMiB})`}
            x={s.x}
            span={span}
            lines={[{ label: 'highest', values: s.memoryMiB, color: '#0b5cad' }]}
          />
          <Chart
            title="CPU time (ms)"
            x={s.x}
            span={span}
            lines={[{ label: 'CPU', values: s.cpuMs, color: '#57606a' }]}
          />
        </div>
      )}
    </>
  );
}

function Chart(props: {
  title: string;
  x: number[];
  span: [number, number];
  lines: { label: string; values: (number | null)[]; color: string }[];
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const plot = new uPlot(
      {
        width: Math.max(260, el.clientWidth),
        height: 180,
        series: [
          {},
          ...props.lines.map((l) => ({ label: l.label, stroke: l.color, width: 1.5, spanGaps: false })),
        ],
        scales: { x: { time: true, range: () => props.span } },
        axes: [{}, { size: 50 }],
      },
      [props.x, ...props.lines.map((l) => l.values)],
      el,
    );
    const resize = new ResizeObserver(() =>
      plot.setSize({ width: Math.max(260, el.clientWidth), height: 180 }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [props.x, props.lines, props.span]);
  return (
    <figure className="card chart">
      <figcaption>{props.title}</figcaption>
      <div ref={box} role="img" aria-label={`${props.title}: a chart; the figures are listed above`} />
    </figure>
  );
}
