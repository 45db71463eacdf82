import { Attributes, metrics } from '@opentelemetry/api';
import { DataPointType, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';

/** A reader that exports nowhere: the test collects from it when it wants to look. */
class CollectingReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

/** One data point of the meter `nestjs-lockmgr`, as an exporter would get it. */
export interface MetricPoint {
  metric: string;
  unit: string;
  attributes: Attributes;
  /** A counter's or an up-down counter's value. */
  value?: number;
  /** A histogram's number of recordings. */
  count?: number;
  sum?: number;
}

/**
 * An OpenTelemetry SDK registered as the global meter provider for a test file, as an app registers
 * it before it starts: `collect()` reads what the library recorded so far.
 */
export function useMeterProvider(): { collect: (table?: string) => Promise<MetricPoint[]> } {
  const reader = new CollectingReader();
  beforeAll(() => {
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  });
  afterAll(async () => {
    await reader.shutdown();
    metrics.disable();
  });
  return {
    async collect(table) {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length > 0) throw new AggregateError(errors, 'Collecting metrics failed.');
      const points = resourceMetrics.scopeMetrics
        .filter((scope) => scope.scope.name === 'nestjs-lockmgr')
        .flatMap((scope) => scope.metrics)
        .flatMap(({ descriptor, dataPointType, dataPoints }) =>
          dataPoints.map((point): MetricPoint => {
            const common = { metric: descriptor.name, unit: descriptor.unit, attributes: point.attributes };
            if (dataPointType !== DataPointType.HISTOGRAM) return { ...common, value: point.value as number };
            const { count, sum } = point.value as { count: number; sum?: number };
            return { ...common, count, sum };
          }),
        );
      return table === undefined ? points : points.filter((point) => point.attributes['lockmgr.table'] === table);
    },
  };
}

/** The value of `metric` (a counter, or a histogram's count) with exactly `attributes`; 0 when never recorded. */
export function valueOf(points: MetricPoint[], metric: string, attributes: Attributes): number {
  const point = points.find((candidate) => candidate.metric === metric && sameAttributes(candidate.attributes, attributes));
  return point?.value ?? point?.count ?? 0;
}

function sameAttributes(left: Attributes, right: Attributes): boolean {
  const keys = Object.keys(left);
  return keys.length === Object.keys(right).length && keys.every((key) => left[key] === right[key]);
}
