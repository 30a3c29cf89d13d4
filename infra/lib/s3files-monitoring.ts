import { Duration } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';

// What the operations side watches with `-c storage=s3files` (docs/s3-files.md, 3.8): S3 Files
// publishes to `AWS/S3/Files` with the single dimension `FileSystemId`, most metrics every minute,
// the storage ones every 15 minutes (S3 Files user guide, "Monitoring S3 Files with Amazon
// CloudWatch"). It has no `PercentIOLimit` and no `PermittedThroughput`: those EFS alarms have no
// counterpart here.

export const S3FILES_NAMESPACE = 'AWS/S3/Files';
/** S3 Files: at most 25,000 NFS client connections per file system (the same as EFS). */
export const S3FILES_CONNECTION_LIMIT = 25000;
/**
 * A backlog of files waiting to be exported that stays above this for half an hour means
 * synchronization is stuck, not busy: S3 Files exports up to 800 files/s per file system. (A
 * handful is normal: `reclaimed` is rewritten about every minute and waits for 60 s of quiet.)
 */
export const PENDING_EXPORTS_THRESHOLD = 1000;

export interface S3FilesSource {
  readonly fileSystemId: string;
  readonly bucketName: string;
}

/** An `AWS/S3/Files` metric of the file system. */
export function s3FilesMetric(source: S3FilesSource, metricName: string, statistic: string, props: Partial<cw.MetricProps> = {}): cw.Metric {
  return new cw.Metric({
    period: Duration.minutes(5),
    ...props,
    namespace: S3FILES_NAMESPACE,
    metricName,
    statistic,
    dimensionsMap: { FileSystemId: source.fileSystemId },
  });
}

/** The bucket's size in S3 Standard (`AWS/S3`, daily), every version included. */
export function bucketSizeMetric(source: S3FilesSource, label: string): cw.Metric {
  return new cw.Metric({
    namespace: 'AWS/S3',
    metricName: 'BucketSizeBytes',
    dimensionsMap: { BucketName: source.bucketName, StorageType: 'StandardStorage' },
    statistic: cw.Stats.AVERAGE,
    period: Duration.days(1),
    label,
  });
}

export interface S3FilesAlarmsProps {
  readonly source: S3FilesSource;
  /** Storage alarm threshold in GiB (context `storageAlarmGiB`). */
  readonly storageGiB: number;
  /** The fraction of a limit at which an alarm fires. */
  readonly limitFraction: number;
}

/**
 * The S3 Files alarms, created in `scope` (the base stack's platform alarms): conflicts with S3
 * writers, export and import failures, a stuck export backlog, connections against the limit, and
 * the high-performance storage's size.
 */
export function s3FilesAlarms(scope: Construct, props: S3FilesAlarmsProps): cw.Alarm[] {
  const { source } = props;
  const failure = (id: string, metricName: string, description: string) =>
    new cw.Alarm(scope, id, {
      alarmDescription: description,
      // Maximum of the per-minute values: any non-zero minute counts.
      metric: s3FilesMetric(source, metricName, cw.Stats.MAXIMUM),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });
  return [
    failure(
      'S3FilesLostAndFound',
      'LostAndFoundFiles',
      'S3 Files: a file of the store was moved to .s3files-lost+found-<file system id> because its object was ' +
        'changed through the S3 API before S3 Files exported it (S3 wins conflicts). A message may have vanished, or ' +
        'a register (cutoff, reclaimed) gone back. Look first at who writes to the bucket (CloudTrail data events; ' +
        'the bucket policy should admit S3 Files only), then mount the file system without the access point to inspect it.',
    ),
    failure(
      'S3FilesExportFailures',
      'ExportFailures',
      'S3 Files: files could not be exported to the bucket (terminal failures: PathTooLong, S3AccessDenied, ...). ' +
        'The store keeps working; the bucket lags. Look first at the bucket policy and the synchronization role ' +
        '(S3 Files user guide, Troubleshooting).',
    ),
    failure(
      'S3FilesImportFailures',
      'ImportFailures',
      'S3 Files: objects could not be imported from the bucket. Look first at objects put in the bucket by hand and ' +
        'at the synchronization role (S3 Files user guide, Troubleshooting).',
    ),
    new cw.Alarm(scope, 'S3FilesPendingExports', {
      alarmDescription:
        `S3 Files: more than ${PENDING_EXPORTS_THRESHOLD} files waiting for export during 30 minutes (PendingExports ` +
        'Minimum): synchronization to the bucket is stuck or far behind (S3 Files exports up to 800 files/s). The API ' +
        'is unaffected; S3 readers lag. Look first at ExportFailures and the POST rate.',
      metric: s3FilesMetric(source, 'PendingExports', cw.Stats.MINIMUM),
      threshold: PENDING_EXPORTS_THRESHOLD,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 6,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    }),
    new cw.Alarm(scope, 'S3FilesClientConnections', {
      alarmDescription:
        `S3 Files: more than ${S3FILES_CONNECTION_LIMIT * props.limitFraction} client connections, ${props.limitFraction * 100} % ` +
        `of the ${S3FILES_CONNECTION_LIMIT} per file system. Each function instance holds one. Look first at the ` +
        "functions' concurrency (the routes' throttles bound it; -c reservedConcurrency caps it).",
      metric: s3FilesMetric(source, 'ClientConnections', cw.Stats.SUM, { period: Duration.minutes(1) }),
      threshold: S3FILES_CONNECTION_LIMIT * props.limitFraction,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    }),
    new cw.Alarm(scope, 'S3FilesStorage', {
      alarmDescription:
        `S3 Files: more than ${props.storageGiB} GiB on the file system's high-performance storage (StorageBytes), ` +
        'billed per GB-month with no ceiling (the bucket bills every version on top: dashboard). Look first at the ' +
        'EMF MessagesStored/BytesStored per function and the POST request rate (a flood?), then delete what is not ' +
        'needed (DELETE /messages), lower -c retentionDays or -c postRateLimit, or raise -c storageAlarmGiB.',
      metric: s3FilesMetric(source, 'StorageBytes', cw.Stats.MAXIMUM, { period: Duration.hours(1) }),
      threshold: props.storageGiB * 1024 ** 3,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.MISSING,
    }),
  ];
}

/** The dashboard's S3 Files row: connections, I/O, synchronization, failures, storage. */
export function s3FilesWidgets(source: S3FilesSource): cw.IWidget[][] {
  const m = (name: string, statistic: string, label: string, props: Partial<cw.MetricProps> = {}) =>
    s3FilesMetric(source, name, statistic, { label, ...props });
  return [
    [
      new cw.GraphWidget({
        title: 'S3 Files: client connections',
        width: 8,
        height: 6,
        left: [m('ClientConnections', cw.Stats.SUM, 'Connections', { period: Duration.minutes(1) })],
      }),
      new cw.GraphWidget({
        title: 'S3 Files: I/O (bytes per period)',
        width: 8,
        height: 6,
        left: ['DataReadBytes', 'DataWriteBytes', 'MetadataReadBytes', 'MetadataWriteBytes'].map((name) => m(name, cw.Stats.SUM, name)),
      }),
      new cw.GraphWidget({
        title: 'S3 Files: synchronization with the bucket',
        width: 8,
        height: 6,
        left: [m('PendingExports', cw.Stats.MAXIMUM, 'PendingExports (files)')],
        right: [m('ExportAge', cw.Stats.MAXIMUM, 'ExportAge max (s)'), m('ImportAge', cw.Stats.MAXIMUM, 'ImportAge max (s)')],
      }),
    ],
    [
      new cw.GraphWidget({
        title: 'S3 Files: failures and conflicts (alarms at 1)',
        width: 12,
        height: 6,
        left: ['ExportFailures', 'ImportFailures', 'LostAndFoundFiles'].map((name) => m(name, cw.Stats.MAXIMUM, name)),
      }),
      new cw.GraphWidget({
        title: 'S3 Files: storage (bytes)',
        width: 12,
        height: 6,
        left: [
          m('StorageBytes', cw.Stats.MAXIMUM, 'High-performance storage (StorageBytes)', { period: Duration.hours(1) }),
          bucketSizeMetric(source, 'Bucket, every version (BucketSizeBytes, daily)'),
        ],
      }),
    ],
  ];
}
