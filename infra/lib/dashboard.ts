import { Aws, CfnOutput, Duration } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { apiMetric, efsMetric, efsThroughputPercent, EmfSource, emfMetric, storageErrors } from './alarms';
import { s3FilesWidgets } from './s3files-monitoring';
import { MonitoredStorage } from './storage-kind';

/** A function on the dashboard: its binary (EMF `Function`) and Lambda names. */
export interface DashboardFunction {
  readonly binaryName: string;
  readonly functionName: string;
  /** Its timeout, drawn on the duration graph. */
  readonly timeout: Duration;
}

export interface OperationsDashboardProps {
  readonly dashboardName: string;
  /** The deployment: the EMF `Deployment` dimension of every EMF widget. */
  readonly deployment: string;
  readonly functions: DashboardFunction[];
  readonly httpApi: apigwv2.IHttpApi;
  readonly stageName: string;
  /** The deployed file system: its kind decides the storage row. */
  readonly storage: MonitoredStorage;
}

const PERIOD = Duration.minutes(5);
const FULL_WIDTH = 24;

function lambdaMetric(functionName: string, metricName: string, statistic: string, label?: string): cw.Metric {
  return new cw.Metric({
    namespace: 'AWS/Lambda',
    metricName,
    dimensionsMap: { FunctionName: functionName },
    statistic,
    period: PERIOD,
    label,
  });
}

/**
 * One CloudWatch dashboard: the functions side by side (one column each), then the API, the file
 * system (EFS or S3 Files, whichever is deployed), and the functions' own EMF metrics. Plain CDK rather than cdk-monitoring-constructs: that library
 * would cover the Lambda and HTTP API widgets, but EFS and the EMF metrics need custom widgets
 * anyway, the alarms must live in each function's stack (CodeDeploy rolls back on them) where its
 * facade does not put them, and it would add a dependency; this file is about as long as its
 * configuration would be.
 */
export class OperationsDashboard extends Construct {
  readonly dashboard: cw.Dashboard;
  readonly url: string;

  constructor(scope: Construct, id: string, props: OperationsDashboardProps) {
    super(scope, id);
    const fns = props.functions;
    const width = Math.floor(FULL_WIDTH / Math.max(fns.length, 1));
    const perFunction = (title: string, build: (fn: DashboardFunction) => Partial<cw.GraphWidgetProps>): cw.IWidget[] =>
      fns.map((fn) => new cw.GraphWidget({ title: `${fn.binaryName}: ${title}`, width, height: 6, ...build(fn) }));
    const header = (markdown: string) => new cw.TextWidget({ markdown, width: FULL_WIDTH, height: 1 });
    // This deployment's EMF metrics only: another deployment in the account writes the same names.
    const emf = (fn: DashboardFunction): EmfSource => ({ deployment: props.deployment, binaryName: fn.binaryName });

    this.dashboard = new cw.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(header('## Functions (AWS/Lambda, all versions)'));
    this.dashboard.addWidgets(
      ...perFunction('invocations and errors', (fn) => ({
        left: [lambdaMetric(fn.functionName, 'Invocations', cw.Stats.SUM, 'Invocations')],
        right: [
          lambdaMetric(fn.functionName, 'Errors', cw.Stats.SUM, 'Errors (unhandled)'),
          lambdaMetric(fn.functionName, 'Throttles', cw.Stats.SUM, 'Throttles'),
        ],
      })),
    );
    this.dashboard.addWidgets(
      ...perFunction('duration p50 / p99 (ms)', (fn) => ({
        left: [
          lambdaMetric(fn.functionName, 'Duration', cw.Stats.p(50), 'p50'),
          lambdaMetric(fn.functionName, 'Duration', cw.Stats.p(99), 'p99'),
        ],
        leftAnnotations: [{ value: fn.timeout.toMilliseconds() * 0.8, label: '80 % of timeout (alarm)' }],
      })),
    );
    this.dashboard.addWidgets(
      ...perFunction('concurrency and init (cold starts)', (fn) => ({
        left: [lambdaMetric(fn.functionName, 'ConcurrentExecutions', cw.Stats.MAXIMUM, 'Concurrent executions (max)')],
        right: [
          emfMetric(emf(fn), 'InitTime', { statistic: cw.Stats.MAXIMUM, label: 'InitTime max (ms)' }),
          emfMetric(emf(fn), 'InitTime', { statistic: cw.Stats.SAMPLE_COUNT, label: 'Cold starts' }),
        ],
      })),
    );

    this.dashboard.addWidgets(header(`## API (AWS/ApiGateway, stage ${props.stageName})`));
    const api = (metric: string, statistic: string, label: string) =>
      apiMetric(props.httpApi, props.stageName, metric, statistic).with({ label });
    this.dashboard.addWidgets(
      new cw.GraphWidget({ title: 'API: requests', width: 8, height: 6, left: [api('Count', cw.Stats.SUM, 'Requests')] }),
      new cw.GraphWidget({
        title: 'API: 4xx and 5xx',
        width: 8,
        height: 6,
        left: [api('4xx', cw.Stats.SUM, '4xx'), api('5xx', cw.Stats.SUM, '5xx')],
        right: [api('5xx', cw.Stats.AVERAGE, '5xx rate (0-1, alarm > 0.05)')],
      }),
      new cw.GraphWidget({
        title: 'API: latency (ms)',
        width: 8,
        height: 6,
        left: [
          api('Latency', cw.Stats.p(50), 'Latency p50'),
          api('Latency', cw.Stats.p(99), 'Latency p99'),
          api('IntegrationLatency', cw.Stats.p(99), 'IntegrationLatency p99'),
        ],
      }),
    );

    const storage = props.storage;
    if (storage.kind === 'efs') {
      this.dashboard.addWidgets(header('## EFS (AWS/EFS)'));
      const fs = storage;
      this.dashboard.addWidgets(
        new cw.GraphWidget({
          title: 'EFS: client connections',
          width: 6,
          height: 6,
          left: [efsMetric(fs, 'ClientConnections', cw.Stats.SUM, { period: Duration.minutes(1), label: 'Connections' })],
        }),
        new cw.GraphWidget({
          title: 'EFS: throughput (bytes per period)',
          width: 6,
          height: 6,
          left: [
            efsMetric(fs, 'DataReadIOBytes', cw.Stats.SUM, { label: 'Read' }),
            efsMetric(fs, 'DataWriteIOBytes', cw.Stats.SUM, { label: 'Write' }),
            efsMetric(fs, 'MetadataIOBytes', cw.Stats.SUM, { label: 'Metadata' }),
          ],
        }),
        new cw.GraphWidget({
          title: 'EFS: % of limits',
          width: 6,
          height: 6,
          left: [efsThroughputPercent(fs), efsMetric(fs, 'PercentIOLimit', cw.Stats.AVERAGE, { label: 'PercentIOLimit' })],
          leftYAxis: { min: 0, max: 100 },
        }),
        new cw.GraphWidget({
          title: 'EFS: storage (bytes)',
          width: 6,
          height: 6,
          left: [
            efsMetric(fs, 'StorageBytes', cw.Stats.MAXIMUM, {
              dimensionsMap: { StorageClass: 'Total' },
              period: Duration.hours(1),
              label: 'StorageBytes (Total)',
            }),
          ],
        }),
      );
    } else {
      this.dashboard.addWidgets(header(`## S3 Files (AWS/S3/Files) and its bucket (AWS/S3, ${storage.bucketName})`));
      for (const row of s3FilesWidgets(storage)) {
        this.dashboard.addWidgets(...row);
      }
    }

    this.dashboard.addWidgets(header(`## Functions' EMF metrics (namespace EfsMessages, Deployment=${props.deployment}, dimension Function)`));
    this.dashboard.addWidgets(
      ...perFunction('StoreTime p50 / p99 (ms)', (fn) => ({
        left: [
          emfMetric(emf(fn), 'StoreTime', { statistic: cw.Stats.p(50), label: 'p50' }),
          emfMetric(emf(fn), 'StoreTime', { statistic: cw.Stats.p(99), label: 'p99' }),
        ],
      })),
    );
    this.dashboard.addWidgets(
      ...perFunction('messages and bytes', (fn) => ({
        left: ['MessagesReturned', 'MessagesStored', 'MessagesDeleted'].map((m) => emfMetric(emf(fn), m, { label: m })),
        right: ['BytesReturned', 'BytesStored'].map((m) => emfMetric(emf(fn), m, { label: m })),
      })),
    );
    this.dashboard.addWidgets(
      ...perFunction('error responses', (fn) => ({
        left: [
          emfMetric(emf(fn), 'Errors', { label: 'Errors (all error responses)' }),
          storageErrors(emf(fn), PERIOD),
        ],
      })),
    );

    this.url = `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards:name=${props.dashboardName}`;
    new CfnOutput(this, 'Url', { key: 'DashboardUrl', description: 'The operations dashboard', value: this.url });
  }
}
