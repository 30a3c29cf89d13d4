import { createHash } from 'node:crypto';
import { Aws, CfnResource, Duration, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { s3FilesAlarms } from './s3files-monitoring';
import { MonitoredStorage, StorageKind } from './storage-kind';

/** The functions' Embedded Metric Format namespace (the Rust functions' EMF contract). */
export const EMF_NAMESPACE = 'EfsMessages';
/** The error codes counted as storage errors: 503 storage_unavailable and 507 storage_full. */
export const STORAGE_ERROR_METRICS = ['Error_storage_unavailable', 'Error_storage_full'] as const;

/** EFS: at most 25,000 NFS client connections per file system. */
export const EFS_CONNECTION_LIMIT = 25000;
/** Alarm when a limit is 80 % used. */
export const LIMIT_ALARM_FRACTION = 0.8;
/** The API's 5xx rate (the `5xx` metric's Average, 0–1) above which its alarm fires. */
export const API_5XX_RATE_THRESHOLD = 0.05;
/** The API's p99 latency (ms) above which its alarm fires. */
export const API_LATENCY_P99_THRESHOLD_MS = 2000;
/** @default storage alarm threshold, GiB (context `storageAlarmGiB`). */
export const DEFAULT_STORAGE_ALARM_GIB = 10;

/**
 * Whose EMF metrics: the deployment (the functions' `DEPLOYMENT`, the app's stack prefix) and the
 * function (its binary). Both are dimensions of every metric the functions write
 * (shared/src/metrics.rs), so two deployments in one account and region never read each other's.
 */
export interface EmfSource {
  readonly deployment: string;
  readonly binaryName: string;
}

/** One EMF metric of one function of one deployment (dimension set [["Deployment", "Function"]]). */
export function emfMetric(source: EmfSource, metricName: string, props: Partial<cw.MetricProps> = {}): cw.Metric {
  return new cw.Metric({
    statistic: cw.Stats.SUM,
    period: Duration.minutes(5),
    ...props,
    namespace: EMF_NAMESPACE,
    metricName,
    dimensionsMap: { Deployment: source.deployment, Function: source.binaryName },
  });
}

/** 503 + 507 answers of one function, from its EMF metrics (a missing metric counts as 0). */
export function storageErrors(source: EmfSource, period: Duration = Duration.minutes(5)): cw.MathExpression {
  return new cw.MathExpression({
    expression: 'FILL(unavailable, 0) + FILL(full, 0)',
    usingMetrics: {
      unavailable: emfMetric(source, STORAGE_ERROR_METRICS[0], { period }),
      full: emfMetric(source, STORAGE_ERROR_METRICS[1], { period }),
    },
    label: `${source.binaryName} storage errors (503 + 507)`,
    period,
  });
}

export interface AlarmTopicProps {
  /** Context `alarmEmail`: subscribe this address (it must confirm). @default no subscription */
  readonly email?: string;
  /** What happens to the topic's key on stack deletion. @default DESTROY */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The one SNS topic every alarm notifies. Encrypted with a customer-managed key (CloudWatch cannot
 * publish to a topic under the AWS-managed `aws/sns` key: its policy cannot name CloudWatch) and
 * reachable over TLS only.
 */
export class AlarmTopic extends Construct {
  readonly topic: sns.Topic;
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: AlarmTopicProps = {}) {
    super(scope, id);
    // Cost: a customer-managed key is $1/month; rotation is free for the key material's first year
    // and cdk-nag (KMS5) requires it.
    this.key = new kms.Key(this, 'Key', {
      description: 'Encrypts the messages API alarm topic',
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch alarms publish to the encrypted topic: exactly the statement AWS documents for
    // AWS services publishing to an encrypted topic (SNS developer guide, "Enable compatibility
    // between event sources from AWS services and encrypted topics"): Decrypt and GenerateDataKey*.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'], // in a key policy, "*" is this key
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Messages API alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    // CloudWatch publishes for this account's alarms only. (enforceSSL gives the topic a policy of
    // its own, which replaces SNS's default one.)
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );
    if (props.email) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    }
  }
}

/** Validates context `alarmEmail` (a single address, no display name). */
export function parseAlarmEmail(raw: string | undefined): string | undefined {
  if (raw === undefined || raw.trim() === '') {
    return undefined;
  }
  const email = raw.trim();
  if (!/^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/.test(email)) {
    throw new Error(`context 'alarmEmail' must be one e-mail address, got '${raw}'`);
  }
  return email;
}

export interface FunctionAlarmsProps {
  /** The binary name: the EMF `Function` dimension. */
  readonly binaryName: string;
  /** The deployment: the EMF `Deployment` dimension. */
  readonly deployment: string;
  readonly function: lambda.IFunction;
  /** The function's fixed name: the errors alarm is named after it and the version. */
  readonly functionName: string;
  readonly alias: lambda.Alias;
  /** The version this stack publishes, which CodeDeploy shifts `live` to: the errors alarm judges it alone. */
  readonly version: lambda.Version;
  readonly timeout: Duration;
  readonly topic: sns.ITopic;
  /** The function's reserved concurrency, for the throttle alarm's description. */
  readonly reservedConcurrency?: number;
  /** The function's log group name, for the descriptions. */
  readonly logGroupName: string;
  /** The file system deployed, whose dashboard widgets the descriptions point to. */
  readonly storage: StorageKind;
}

/** Where the function alarms' descriptions send an operator on each kind of storage. */
const STORAGE_HINTS: Readonly<Record<StorageKind, { name: string; slow: string; errors: string }>> = {
  efs: {
    name: 'EFS',
    slow: 'the EFS widgets (PercentIOLimit, throughput, connections)',
    errors: "the dashboard's EFS widgets (StorageBytes for 507; ClientConnections, PercentIOLimit and throughput for 503)",
  },
  s3files: {
    name: 'S3 Files',
    slow: 'the S3 Files widgets (I/O, client connections, synchronization with the bucket)',
    errors: "the dashboard's S3 Files widgets (storage for 507; client connections, I/O and synchronization for 503)",
  },
};

/**
 * Unhandled errors of one version of a function as served through its alias: Lambda's `Errors`
 * with the `ExecutedVersion` dimension, which it publishes for invocations through an alias, per
 * version that served them ("Use the ExecutedVersion dimension to compare error rates for two
 * versions of a function that are both targets of a weighted alias", Lambda developer guide,
 * "Viewing metrics for Lambda functions"; CDK's LambdaMetrics.errorsSum lists the dimension set
 * [ExecutedVersion, FunctionName, Resource]).
 */
export function versionErrors(fn: lambda.IFunction, alias: lambda.Alias, version: lambda.IVersion): cw.Metric {
  return new cw.Metric({
    namespace: 'AWS/Lambda',
    metricName: 'Errors',
    dimensionsMap: { FunctionName: fn.functionName, Resource: `${fn.functionName}:${alias.aliasName}`, ExecutedVersion: version.version },
    statistic: cw.Stats.SUM,
    period: Duration.minutes(1),
  });
}

/**
 * A short name for the version a stack publishes: a digest of its logical id, which CDK derives
 * from the function's code and configuration (so a new version has a new one).
 */
export function versionTag(version: lambda.Version): string {
  const cfnVersion = version.node.defaultChild as CfnResource;
  return createHash('sha256').update(Stack.of(version).resolve(cfnVersion.logicalId)).digest('hex').slice(0, 16);
}

/**
 * One function's alarms, in its own stack: unhandled errors of the version this stack deploys
 * (CodeDeploy rolls a deployment back on it), throttles, p99 duration near the timeout, and storage
 * errors (503/507) from the function's EMF metrics. Each notifies the alarm topic.
 */
export class FunctionAlarms extends Construct {
  readonly errors: cw.Alarm;
  readonly throttles: cw.Alarm;
  readonly duration: cw.Alarm;
  readonly storageErrors: cw.Alarm;

  constructor(scope: Construct, id: string, props: FunctionAlarmsProps) {
    super(scope, id);
    const name = props.binaryName;
    const logs = `log group ${props.logGroupName}`;
    const hints = STORAGE_HINTS[props.storage];
    const durationThreshold = props.timeout.toMilliseconds() * LIMIT_ALARM_FRACTION;

    // The rollback alarm judges the new version alone: during a canary the old version still
    // serves most requests, and its errors (or those of a scheduled run it served) must neither
    // roll back a healthy deployment nor block the fix of a failing one. One alarm per version: a
    // new version gets a new name, so CloudFormation creates a new alarm, which starts in
    // INSUFFICIENT_DATA, rather than updating the old one, whose state (ALARM, if the old version
    // was failing) would stay until its next evaluation and could stop the deployment at once.
    this.errors = new cw.Alarm(this, 'Errors', {
      alarmName: Lazy.string({ produce: () => `${props.functionName}-errors-${versionTag(props.version)}` }),
      alarmDescription:
        `${name}: the version this stack deployed had unhandled errors (crash, timeout, out of memory) when invoked ` +
        'through the live alias (Errors by ExecutedVersion): not 4xx/5xx answers. During a deployment CodeDeploy rolls ' +
        `the alias back to the previous version on it. Look first at the ${logs} ` +
        "for 'Task timed out', panics and REPORT lines with errors, and at which version the alias serves.",
      metric: versionErrors(props.function, props.alias, props.version),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });
    this.throttles = new cw.Alarm(this, 'Throttles', {
      alarmDescription:
        `${name}: requests were refused (429/5xx) because the function hit its concurrency limit` +
        `${props.reservedConcurrency !== undefined ? ` (reserved concurrency ${props.reservedConcurrency})` : " (no reservation: the account's unreserved concurrency)"}. ` +
        "Look first at the dashboard's concurrency and API request widgets: raise -c reservedConcurrency only " +
        "if the traffic is legitimate; otherwise lower the busy routes' throttles (-c getRateLimit, postRateLimit, deleteRateLimit).",
      metric: props.function.metricThrottles({ period: Duration.minutes(5), statistic: cw.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });
    this.duration = new cw.Alarm(this, 'DurationP99', {
      alarmDescription:
        `${name}: p99 duration above ${durationThreshold} ms, 80 % of its ${props.timeout.toSeconds()} s timeout. ` +
        `Look first at the EMF StoreTime p99 (time spent in ${hints.name}) and ${hints.slow}, ` +
        `then at the slowest requests in the ${logs}.`,
      metric: props.function.metricDuration({ period: Duration.minutes(5), statistic: cw.Stats.p(99) }),
      threshold: durationThreshold,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });
    this.storageErrors = new cw.Alarm(this, 'StorageErrors', {
      alarmDescription:
        `${name}: answered 503 storage_unavailable or 507 storage_full (EMF metrics ${STORAGE_ERROR_METRICS.join(' + ')}, ` +
        `Deployment=${props.deployment}, Function=${name}). ` +
        `Look first at ${hints.errors}, then at the storage error lines in the ${logs}.`,
      metric: storageErrors({ deployment: props.deployment, binaryName: name }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });
    const action = new cwActions.SnsAction(props.topic);
    for (const alarm of [this.errors, this.throttles, this.duration, this.storageErrors]) {
      alarm.addAlarmAction(action);
    }
  }
}

export interface PlatformAlarmsProps {
  readonly httpApi: apigwv2.IHttpApi;
  readonly stageName: string;
  /** The deployed file system: its kind decides the storage alarms. */
  readonly storage: MonitoredStorage;
  readonly topic: sns.ITopic;
  /** Storage alarm threshold in GiB. @default DEFAULT_STORAGE_ALARM_GIB */
  readonly storageAlarmGiB?: number;
  /** The API's access-log group name, for the descriptions. */
  readonly accessLogGroupName: string;
}

/** API Gateway `AWS/ApiGateway` metric of the HTTP API's stage. */
export function apiMetric(api: apigwv2.IHttpApi, stageName: string, metricName: string, statistic: string, period = Duration.minutes(5)) {
  return new cw.Metric({
    namespace: 'AWS/ApiGateway',
    metricName,
    dimensionsMap: { ApiId: api.apiId, Stage: stageName },
    statistic,
    period,
  });
}

/** An `AWS/EFS` metric of the file system. */
export function efsMetric(fileSystem: { readonly fileSystemId: string }, metricName: string, statistic: string, props: Partial<cw.MetricProps> = {}) {
  return new cw.Metric({
    period: Duration.minutes(5),
    ...props,
    namespace: 'AWS/EFS',
    metricName,
    statistic,
    dimensionsMap: { FileSystemId: fileSystem.fileSystemId, ...(props.dimensionsMap ?? {}) },
  });
}

/** Percent of the permitted throughput used: MeteredIOBytes per second over PermittedThroughput. */
export function efsThroughputPercent(fileSystem: { readonly fileSystemId: string }, period = Duration.minutes(5)): cw.MathExpression {
  return new cw.MathExpression({
    expression: '100 * (metered / PERIOD(metered)) / permitted',
    usingMetrics: {
      metered: efsMetric(fileSystem, 'MeteredIOBytes', cw.Stats.SUM, { period }),
      permitted: efsMetric(fileSystem, 'PermittedThroughput', cw.Stats.AVERAGE, { period }),
    },
    label: 'Throughput used (% of permitted)',
    period,
  });
}

/**
 * The shared platform's alarms, in the base stack: the API's 5xx rate and p99 latency, and those
 * of the deployed file system: for EFS, connections, I/O and throughput against the mode's limits,
 * and storage size; for S3 Files, see s3FilesAlarms.
 */
export class PlatformAlarms extends Construct {
  readonly alarms: cw.Alarm[];

  constructor(scope: Construct, id: string, props: PlatformAlarmsProps) {
    super(scope, id);
    const { httpApi, stageName, storage } = props;
    const accessLogs = `the access log (${props.accessLogGroupName}: status, integrationError, integrationLatency)`;
    const storageGiB = props.storageAlarmGiB ?? DEFAULT_STORAGE_ALARM_GIB;
    const alarm = (alarmId: string, alarmProps: cw.AlarmProps) => new cw.Alarm(this, alarmId, alarmProps);

    this.alarms = [
      alarm('Api5xxRate', {
        alarmDescription:
          `API: more than ${API_5XX_RATE_THRESHOLD * 100} % of requests answered 5xx over 5 minutes (the 5xx metric's ` +
          'Average is the 5xx rate, 0-1). Look first at the function alarms (which function: errors, throttles, ' +
          `storage errors), then at ${accessLogs}.`,
        metric: apiMetric(httpApi, stageName, '5xx', cw.Stats.AVERAGE),
        threshold: API_5XX_RATE_THRESHOLD,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      alarm('ApiLatencyP99', {
        alarmDescription:
          `API: p99 latency above ${API_LATENCY_P99_THRESHOLD_MS} ms in 3 consecutive 5-minute periods. Look first at ` +
          "IntegrationLatency against Latency on the dashboard (the functions or API Gateway?), then each function's " +
          'p99 duration and EMF StoreTime.',
        metric: apiMetric(httpApi, stageName, 'Latency', cw.Stats.p(99)),
        threshold: API_LATENCY_P99_THRESHOLD_MS,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      ...(storage.kind === 'efs'
        ? this.efsAlarms(storage, storageGiB, alarm)
        : s3FilesAlarms(this, { source: storage, storageGiB, limitFraction: LIMIT_ALARM_FRACTION })),
    ];
    const action = new cwActions.SnsAction(props.topic);
    for (const a of this.alarms) {
      a.addAlarmAction(action);
    }
  }

  /** EFS: connections, I/O limit, throughput and storage. */
  private efsAlarms(
    fileSystem: { readonly fileSystemId: string },
    storageGiB: number,
    alarm: (alarmId: string, alarmProps: cw.AlarmProps) => cw.Alarm,
  ): cw.Alarm[] {
    return [
      alarm('EfsClientConnections', {
        alarmDescription:
          `EFS: more than ${EFS_CONNECTION_LIMIT * LIMIT_ALARM_FRACTION} client connections, 80 % of the ${EFS_CONNECTION_LIMIT} ` +
          'per file system. Each function instance holds one. Look first at the functions\' concurrency ' +
          '(the routes\' throttles bound it; -c reservedConcurrency caps it) and at other clients mounting this file system.',
        metric: efsMetric(fileSystem, 'ClientConnections', cw.Stats.SUM, { period: Duration.minutes(1) }),
        threshold: EFS_CONNECTION_LIMIT * LIMIT_ALARM_FRACTION,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 5,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      alarm('EfsIoLimit', {
        alarmDescription:
          'EFS: PercentIOLimit above 80 % (the General Purpose performance mode\'s I/O limit; the metric exists only ' +
          'in that mode, which this file system uses). Look first at the EMF StoreTime and operations per function ' +
          '(listing and reclaiming touch many files), then at the request rate.',
        metric: efsMetric(fileSystem, 'PercentIOLimit', cw.Stats.AVERAGE),
        threshold: 100 * LIMIT_ALARM_FRACTION,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      alarm('EfsThroughput', {
        alarmDescription:
          'EFS: metered throughput above 80 % of PermittedThroughput (in Elastic throughput mode, the maximum the ' +
          'file system may drive). Look first at the EMF BytesStored/BytesReturned per function (who moves the ' +
          "bytes?) and the API's request count.",
        metric: efsThroughputPercent(fileSystem),
        threshold: 100 * LIMIT_ALARM_FRACTION,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
      alarm('EfsStorage', {
        alarmDescription:
          `EFS: more than ${storageGiB} GiB stored (StorageBytes, all storage classes), billed per GB-month with no ` +
          'ceiling. Look first at the EMF MessagesStored/BytesStored per function and the POST request rate ' +
          '(a flood?), then delete what is not needed (DELETE /messages), lower -c retentionDays or -c postRateLimit, ' +
          'or raise -c storageAlarmGiB.',
        metric: efsMetric(fileSystem, 'StorageBytes', cw.Stats.MAXIMUM, {
          dimensionsMap: { StorageClass: 'Total' },
          period: Duration.hours(1),
        }),
        threshold: storageGiB * 1024 ** 3,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cw.TreatMissingData.MISSING,
      }),
    ];
  }
}
