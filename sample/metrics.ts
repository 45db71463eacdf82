import { metrics } from '@opentelemetry/api';
import { DataPointType, MeterProvider, PeriodicExportingMetricReader, PushMetricExporter } from '@opentelemetry/sdk-metrics';

/** One line per data point of the meter `nestjs-lockmgr`: the cluster's story in numbers. */
const printLockMetrics: PushMetricExporter = {
  export({ scopeMetrics }, done) {
    const lockMetrics = scopeMetrics.filter(({ scope }) => scope.name === 'nestjs-lockmgr').flatMap((scope) => scope.metrics);
    for (const { descriptor, dataPointType, dataPoints } of lockMetrics) {
      for (const { attributes, value } of dataPoints) {
        const labels = Object.entries(attributes).map(([key, label]) => `${key}=${String(label)}`).join(',');
        const shown =
          dataPointType === DataPointType.HISTOGRAM
            ? `count ${(value as { count: number }).count}, sum ${((value as { sum?: number }).sum ?? 0).toFixed(3)} ${descriptor.unit}`
            : `${value as number} ${descriptor.unit}`;
        console.log(`metric ${descriptor.name}{${labels}} ${shown}`);
      }
    }
    done({ code: 0 });
  },
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};

/**
 * Registers an OpenTelemetry meter provider that prints the lock metrics every 10 seconds, as an app
 * registers its SDK (with an OTLP or Prometheus exporter) before it starts: nestjs-lockmgr records on
 * the provider registered when its module starts.
 */
export function printMetrics(): void {
  const reader = new PeriodicExportingMetricReader({ exporter: printLockMetrics, exportIntervalMillis: 10_000 });
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
}
