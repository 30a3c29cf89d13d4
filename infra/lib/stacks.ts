import { Annotations, CfnOutput, CfnResource, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { AccessPolicies, ApiAccess, DEFAULT_ACCESS } from './access';
import { AlarmTopic, FunctionAlarms, PlatformAlarms } from './alarms';
import { BaseValueOutputs } from './base-values';
import { MessagesApi, RouteThrottles } from './api';
import { SpendBudget } from './budget';
import { DashboardFunction, OperationsDashboard } from './dashboard';
import { DeploymentStyle, SafeDeployment } from './deployment';
import { FUNCTION_TIMEOUT, MessageFunction } from './function';
import { deletesEverything, ReclaimSchedule } from './reclaim';
import { MessageStorage } from './storage';
import { StorageKind } from './storage-kind';
import { Route, WorkspaceFunction } from './workspace';

export interface BaseStackProps extends StackProps {
  /** The deployment's name (the stack prefix): the EMF `Deployment` dimension the dashboard reads. */
  readonly deploymentName: string;
  /** The HTTP API's name. @default '<stack name without -base>-api' */
  readonly apiName?: string;
  /**
   * Removal policy of the file system (the messages) and the access-log group.
   * @default RemovalPolicy.DESTROY: a demo, `cdk destroy --all` leaves nothing billable behind.
   * Use RETAIN to keep the messages when the stack is deleted.
   */
  readonly removalPolicy?: RemovalPolicy;
  /** API-wide steady-state requests per second. @default 50 */
  readonly throttleRateLimit?: number;
  /** API-wide burst. @default 100 */
  readonly throttleBurstLimit?: number;
  /** @default ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** Who may call the API. @default DEFAULT_ACCESS (IAM) */
  readonly access?: ApiAccess;
  /** The route table (all functions): `iam` mode's policies grant per route. */
  readonly routes: Route[];
  /** The functions (deployed in their own stacks) the dashboard shows, by name. */
  readonly functions: DashboardFunction[];
  /** Context `alarmEmail`: subscribed to the alarm topic. @default none */
  readonly alarmEmail?: string;
  /** Context `storageAlarmGiB`. @default DEFAULT_STORAGE_ALARM_GIB */
  readonly storageAlarmGiB?: number;
  /** Context `monthlyBudgetUsd`: a cost budget notifying the alarm topic. @default none */
  readonly monthlyBudgetUsd?: number;
  /** Context `storage`: EFS or S3 Files. @default DEFAULT_STORAGE (EFS) */
  readonly storage?: StorageKind;
  /** The deployment settings this stack reads, stated as its `Settings` output. @default none */
  readonly settings?: Record<string, unknown>;
}

/**
 * Everything the three functions share and that rarely changes: the VPC, the file system and its
 * access point, the security groups, and the HTTP API with its stage and access logs.
 */
export class BaseStack extends Stack {
  readonly storage: MessageStorage;
  readonly api: MessagesApi;
  /** `iam` mode only: the reader, writer and admin policies. */
  readonly accessPolicies?: AccessPolicies;
  /** The SNS topic of every alarm (the function stacks' too). */
  readonly alarmTopic: AlarmTopic;
  readonly platformAlarms: PlatformAlarms;
  readonly dashboard: OperationsDashboard;
  /** With context `monthlyBudgetUsd` only. */
  readonly budget?: SpendBudget;
  /** What the function stacks read (see BaseValueOutputs). */
  readonly shared: BaseValueOutputs;

  constructor(scope: Construct, id: string, props: BaseStackProps) {
    super(scope, id, props);
    this.storage = new MessageStorage(this, 'Storage', {
      removalPolicy: props.removalPolicy,
      logRetention: props.logRetention,
      kind: props.storage,
    });
    this.api = new MessagesApi(this, 'Api', {
      apiName: props.apiName ?? `${this.stackName.replace(/-base$/, '')}-api`,
      throttleRateLimit: props.throttleRateLimit,
      throttleBurstLimit: props.throttleBurstLimit,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
      access: props.access,
    });
    const access = props.access ?? DEFAULT_ACCESS;
    if (access.mode === 'iam') {
      this.accessPolicies = new AccessPolicies(this, 'Access', {
        httpApi: this.api.httpApi,
        stage: this.api.stage,
        routes: props.routes,
      });
    } else if (access.mode === 'public') {
      Annotations.of(this.api).addWarningV2(
        '@efs-messages:publicApi',
        'access=public: the messages API is OPEN TO THE INTERNET. Anyone can read, post and delete every ' +
          'message. Deploy with the default access=iam (SigV4) or access=jwt unless that is what you want.',
      );
    }
    // Operations: one alarm topic for every stack, the API and file-system alarms, one dashboard.
    const prefix = this.stackName.replace(/-base$/, '');
    this.alarmTopic = new AlarmTopic(this, 'AlarmTopic', { email: props.alarmEmail, removalPolicy: props.removalPolicy });
    this.platformAlarms = new PlatformAlarms(this, 'Alarms', {
      httpApi: this.api.httpApi,
      stageName: this.api.stage.stageName,
      storage: this.storage.files.monitored,
      topic: this.alarmTopic.topic,
      storageAlarmGiB: props.storageAlarmGiB,
      accessLogGroupName: this.api.accessLogGroup.logGroupName,
    });
    this.dashboard = new OperationsDashboard(this, 'Dashboard', {
      dashboardName: `${prefix}-operations`,
      deployment: props.deploymentName,
      functions: props.functions,
      httpApi: this.api.httpApi,
      stageName: this.api.stage.stageName,
      storage: this.storage.files.monitored,
    });
    if (props.monthlyBudgetUsd !== undefined) {
      this.budget = new SpendBudget(this, 'Budget', {
        budgetName: `${prefix}-monthly`,
        monthlyUsd: props.monthlyBudgetUsd,
        alarmTopic: this.alarmTopic,
      });
    }
    // What the function stacks read, through outputs named after the identity of what they name.
    const cfn = (c: Construct) => c.node.defaultChild as CfnResource;
    this.shared = new BaseValueOutputs(this, 'Shared', {
      vpc: { resource: cfn(this.storage.vpc) },
      subnets: this.storage.vpc.isolatedSubnets.map((subnet) => ({ resource: cfn(subnet) })),
      availabilityZones: this.storage.vpc.isolatedSubnets.map((subnet) => subnet.availabilityZone),
      functionSecurityGroup: { resource: cfn(this.storage.functionSecurityGroup), attribute: 'GroupId' },
      // EFS or S3 Files: the L1 resources and their ARN attributes (`Arn`, or S3 Files' `FileSystemArn`, `AccessPointArn`).
      storage: this.storage.kind,
      fileSystem: this.storage.files.fileSystemArnSource,
      accessPoint: this.storage.files.accessPointArnSource,
      api: { resource: cfn(this.api.httpApi) },
      alarmTopic: { resource: cfn(this.alarmTopic.topic) },
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topic.topicArn, description: 'Every alarm notifies this topic' });
    new CfnOutput(this, 'FileSystemId', { value: this.storage.files.fileSystemId });
    new CfnOutput(this, 'AccessPointId', { value: this.storage.files.accessPointId });
    if (this.storage.s3Files) {
      new CfnOutput(this, 'BucketName', {
        value: this.storage.s3Files.bucket.bucket.bucketName,
        description: 'The bucket S3 Files keeps in sync with the messages (read-only through the S3 API: only S3 Files writes)',
      });
    }
    settingsOutput(this, props.settings);
  }
}

/** Output `Settings`: the deployment settings (infra/deployments.json) a stack was deployed with. */
function settingsOutput(stack: Stack, settings: Record<string, unknown> | undefined): void {
  if (settings !== undefined) {
    new CfnOutput(stack, 'Settings', {
      value: JSON.stringify(settings),
      description: 'The deployment settings (infra/deployments.json) this stack was deployed with',
    });
  }
}

export interface FunctionStackProps extends StackProps {
  readonly base: BaseStack;
  /** The deployment's name (the stack prefix): the function's `DEPLOYMENT`, its EMF `Deployment` dimension. */
  readonly deploymentName: string;
  readonly fn: WorkspaceFunction;
  readonly manifestPath: string;
  /** At least 1. @default none (see MIN_RESERVED_CONCURRENCY) */
  readonly reservedConcurrency?: number;
  /** @default ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the function's log group. @default DESTROY */
  readonly removalPolicy?: RemovalPolicy;
  /** Who may call the routes. @default DEFAULT_ACCESS (IAM) */
  readonly access?: ApiAccess;
  /** The Lambda function's name. */
  readonly functionName: string;
  /** How CodeDeploy shifts traffic to a new version. */
  readonly deployment: DeploymentStyle;
  /** Context `skipCanary`: this deploy shifts all traffic at once. @default false */
  readonly skipCanary?: boolean;
  /** `MESSAGE_RETENTION_DAYS`. @default DEFAULT_MESSAGE_RETENTION_DAYS */
  readonly retentionDays?: number;
  /** Each route's own throttle, by method. @default DEFAULT_ROUTE_THROTTLES */
  readonly routeThrottles?: RouteThrottles;
  /** The deployment settings this stack reads, stated as its `Settings` output. @default none */
  readonly settings?: Record<string, unknown>;
}

/**
 * One function with its role, log group, routes, integration and invoke permissions. It only
 * references the base stack, so `cdk deploy <this stack>` changes this function and nothing else.
 */
export class FunctionStack extends Stack {
  readonly messageFunction: MessageFunction;
  readonly alarms: FunctionAlarms;
  readonly deployment: SafeDeployment;
  /** The function that deletes everything also reclaims the space, on a schedule. */
  readonly reclaimSchedule?: ReclaimSchedule;

  constructor(scope: Construct, id: string, props: FunctionStackProps) {
    super(scope, id, props);
    // Deployed after the base stack (its mount targets, access point and API exist first), and
    // reading it only through BaseValueOutputs' references.
    this.addStackDependency(props.base);
    const base = props.base.shared.values;
    this.messageFunction = new MessageFunction(this, 'Handler', {
      base,
      fn: props.fn,
      manifestPath: props.manifestPath,
      reservedConcurrency: props.reservedConcurrency,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
      access: props.access,
      functionName: props.functionName,
      deploymentName: props.deploymentName,
      retentionDays: props.retentionDays,
      stageName: props.base.api.stage.stageName,
      routeThrottles: props.routeThrottles,
    });
    const fn = this.messageFunction;
    this.alarms = new FunctionAlarms(this, 'Alarms', {
      binaryName: props.fn.binaryName,
      deployment: props.deploymentName,
      function: fn.function,
      functionName: props.functionName,
      version: fn.version,
      alias: fn.alias,
      timeout: FUNCTION_TIMEOUT,
      topic: sns.Topic.fromTopicArn(this, 'AlarmTopic', base.alarmTopicArn),
      reservedConcurrency: props.reservedConcurrency,
      logGroupName: fn.logGroup.logGroupName,
      storage: base.storage,
    });
    this.deployment = new SafeDeployment(this, 'Deployment', {
      alias: fn.alias,
      style: props.deployment,
      skipCanary: props.skipCanary,
      rollbackAlarm: this.alarms.errors,
    });
    // CloudFormation updates the deployment group (with the new version's alarm) before it moves
    // the alias, which starts the CodeDeploy deployment.
    fn.alias.node.addDependency(this.deployment.deploymentGroup);
    if (deletesEverything(props.fn.routes)) {
      this.reclaimSchedule = new ReclaimSchedule(this, 'Reclaim', { target: fn.alias });
    }
    new CfnOutput(this, 'FunctionName', { value: this.messageFunction.function.functionName });
    settingsOutput(this, props.settings);
  }
}
