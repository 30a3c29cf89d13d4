import { Annotations, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ApiAccess, DEFAULT_ACCESS, pinRouteAuthorization, RouteAuthorizers } from './access';
import { BaseValues } from './base-values';
import { DEFAULT_ROUTE_THROTTLES, RouteThrottle, RouteThrottles, throttleClassOf } from './api';
import { RustCode } from './code';
import { SdkCallProvider } from './sdk-call';
import { directS3ReadOf, DirectS3ReadMode } from './s3files';
import { MOUNT_PATH } from './storage';
import { CLIENT_ACTIONS, clientActionsFor } from './storage-kind';
import { Route, WorkspaceFunction } from './workspace';

/** The contract's largest accepted message (`MAX_MESSAGE_BYTES`). */
export const MAX_MESSAGE_BYTES = 262144;
/**
 * How long messages are kept (`MESSAGE_RETENTION_DAYS`, context `retentionDays`): older ones are
 * gone for every reader at once and the delete function's schedule reclaims their files. `0`
 * keeps everything. The same default and bounds as the functions' own (shared/src/config.rs).
 */
export const DEFAULT_MESSAGE_RETENTION_DAYS = 30;
export const MAX_MESSAGE_RETENTION_DAYS = 36500;
/** Below the HTTP API's 30 s integration timeout, so a slow call ends as the function's own error. */
export const FUNCTION_TIMEOUT = Duration.seconds(10);
/**
 * Memory per function, which also sets its CPU: Lambda gives a function CPU in proportion to its
 * memory (1,769 MB is one vCPU, 128 MB about 7 %). Chosen from the power-tuning table in
 * BENCHMARKS.md ("Power tuning"), measured on the latency file system at 10,000 stored:
 *  - get-messages: 256 MB. A page of 100 makes several hundred file-system round trips and needs
 *    a few ms of CPU, which at 128 MB's share often waits for the next 100 ms CPU period; at
 *    256 MB a page is about three times faster for about the same cost per million requests
 *    (fewer billed milliseconds at twice the rate). Reads by id are as fast at any size.
 *  - post-message and delete-messages: 128 MB, the cheapest. They wait on EFS (and DELETE of
 *    everything on the clock-skew bound), not on the CPU: more memory changes neither latency
 *    nor anything but the price. Reclaiming is time-bounded per run, whatever the share.
 */
export const FUNCTION_MEMORY_MB: Readonly<Record<string, number>> = {
  'get-messages': 256,
  'post-message': 128,
  'delete-messages': 128,
};
/** A function the table does not name (a new binary in the route table) gets the cheapest size. */
export const DEFAULT_FUNCTION_MEMORY_MB = 128;

/** The memory size of the function built from `binaryName`. */
export function memoryOf(binaryName: string): number {
  return FUNCTION_MEMORY_MB[binaryName] ?? DEFAULT_FUNCTION_MEMORY_MB;
}
/**
 * Reserved concurrency is opt-in (context `reservedConcurrency`, a whole number of at least 1): by
 * default nothing is reserved. Lambda refuses any reservation that would leave the account fewer
 * than its minimum unreserved concurrency (100 on most accounts), and new accounts may have a total
 * quota of only 10, so a default reservation would fail the first deploy there. Cost is bounded
 * without it: every route has its own throttle, so a function runs at most (its routes' rate
 * limits) × FUNCTION_TIMEOUT instances (README, "The most a stranger can cost per month").
 */
export const MIN_RESERVED_CONCURRENCY = 1;
/** The environment variable that names the deployment in the functions' EMF metrics (shared/src/metrics.rs). */
export const DEPLOYMENT_ENV = 'DEPLOYMENT';
/** The alias the routes invoke; CodeDeploy moves it from version to version. */
export const LIVE_ALIAS = 'live';

/**
 * EC2 actions Lambda needs to create and remove the function's network interfaces in the VPC
 * (the same set as the AWS-managed AWSLambdaVPCAccessExecutionRole policy, minus its logs rights).
 */
const VPC_ACCESS_ACTIONS = [
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:DeleteNetworkInterface',
  'ec2:AssignPrivateIpAddresses',
  'ec2:UnassignPrivateIpAddresses',
];

/**
 * The access point as a Lambda file system, with grants we choose, on either kind of storage.
 * CDK's `FileSystem.fromEfsAccessPoint` always grants `ClientWrite` (and `ClientMount` on resource
 * `*`), and its `fromS3FilesAccessPoint` grants every function `s3files:ClientWrite` and finds the
 * file system, mount targets and their security groups by walking the construct tree, adding an NFS
 * rule per function; a read-only function must not have write. This one grants only the given
 * actions, on this file system, through this access point (both services authorise client actions
 * on the `file-system` resource, with their access-point condition key), and on S3 Files sets the
 * function's `DirectS3Read`.
 */
class AccessPointMount extends lambda.FileSystem {
  constructor(base: BaseValues, actions: string[], directS3Read: DirectS3ReadMode) {
    super({
      arn: base.accessPointArn,
      localMountPath: MOUNT_PATH,
      // The function is created only after the mount targets exist: its stack depends on the base
      // stack, whose access point waits for them (see MessageStorage and FunctionStack).
      dependency: [],
      // No `connections`: the NFS rules between the two security groups are declared once, in
      // MessageStorage, instead of being added by each function.
      policies: [
        new iam.PolicyStatement({
          actions,
          resources: [base.fileSystemArn],
          conditions: { StringEquals: { [CLIENT_ACTIONS[base.storage].accessPointArnKey]: base.accessPointArn } },
        }),
      ],
      // S3 Files only: rendered as FileSystemConfigs[0].S3FilesConfig.DirectS3Read, the field CDK's
      // own fromS3FilesAccessPoint sets (test/s3files.test.ts checks the template).
      ...(base.storage === 's3files' ? { _s3FilesDirectRead: directS3Read } : {}),
    });
  }
}

export interface MessageFunctionProps {
  /**
   * What the function uses of the base stack (its network, the access point, the API): references
   * whose text changes whenever the base resource is replaced (see BaseValueOutputs).
   */
  readonly base: BaseValues;
  /** The binary, its crate and its routes, read from the Cargo workspace. */
  readonly fn: WorkspaceFunction;
  /** The workspace's root Cargo.toml, built by cargo-lambda. */
  readonly manifestPath: string;
  /**
   * Reserved concurrency: caps this function's share of the account's concurrency (and so its
   * cost and its EFS connections) and guarantees it that share. At least 1 (0 would throttle every
   * request).
   * @default none: the function uses the account's unreserved concurrency (see MIN_RESERVED_CONCURRENCY)
   */
  readonly reservedConcurrency?: number;
  /** @default ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the log group on stack deletion. @default DESTROY */
  readonly removalPolicy?: RemovalPolicy;
  /** Who may call the routes. @default DEFAULT_ACCESS (IAM) */
  readonly access?: ApiAccess;
  /** The Lambda function's name (the dashboard in the base stack finds it by name). */
  readonly functionName: string;
  /**
   * The deployment's name (the app's stack prefix): `DEPLOYMENT` in the function's environment,
   * which the functions write as the `Deployment` dimension of every EMF metric.
   */
  readonly deploymentName: string;
  /** `MESSAGE_RETENTION_DAYS`. @default DEFAULT_MESSAGE_RETENTION_DAYS */
  readonly retentionDays?: number;
  /** The stage the routes' throttles are set on. */
  readonly stageName: string;
  /** Each route's own throttle, by method. @default DEFAULT_ROUTE_THROTTLES */
  readonly routeThrottles?: RouteThrottles;
}

/**
 * One Rust Lambda function with its own role, log group, routes and integration. The function
 * mounts the shared access point; it may write only if one of its routes changes state.
 */
export class MessageFunction extends Construct {
  /** The Rust binary's code asset (built, or a placeholder that cannot be deployed). */
  readonly code: RustCode;
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  /** The version this deploy publishes (a new one whenever the code or configuration changes). */
  readonly version: lambda.Version;
  /** The `live` alias: what the routes invoke, and what CodeDeploy shifts to each new version. */
  readonly alias: lambda.Alias;
  readonly routes: apigwv2.HttpRoute[] = [];
  /** One per route, in route order: its own throttle on the stage. */
  readonly routeThrottles: RouteThrottle[] = [];

  constructor(scope: Construct, id: string, props: MessageFunctionProps) {
    super(scope, id);
    const { base, fn } = props;
    if (props.reservedConcurrency !== undefined && !(Number.isInteger(props.reservedConcurrency) && props.reservedConcurrency >= MIN_RESERVED_CONCURRENCY)) {
      throw new Error(`reserved concurrency must be a whole number of at least ${MIN_RESERVED_CONCURRENCY}, got ${props.reservedConcurrency}`);
    }

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      // Cost: logs are billed per GB-month stored; a week is enough to debug a demo.
      retention: props.logRetention ?? logs.RetentionDays.ONE_WEEK,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    });

    // Least privilege: a role of its own with inline grants only (no AWS-managed policies): write
    // to its own log group, manage its VPC network interfaces, and mount the access point.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${fn.binaryName} function`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    this.role.addToPolicy(new iam.PolicyStatement({ actions: VPC_ACCESS_ACTIONS, resources: ['*'] }));
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        "Lambda manages the function's VPC network interfaces with ec2:CreateNetworkInterface, " +
        'DescribeNetworkInterfaces, DescribeSubnets, DeleteNetworkInterface and (Un)AssignPrivateIpAddresses; ' +
        'the Describe actions support no resource-level permissions and the interfaces do not exist yet when ' +
        'the policy is written. This is the AWSLambdaVPCAccessExecutionRole set, inlined and without logs rights.',
    });

    // Read-only functions (GET routes only) can mount but not write: the file system then
    // refuses every write from them, whatever the code does.
    const clientActions = clientActionsFor(base.storage, fn.readOnly);

    // Cost: Graviton (arm64) is about 20% cheaper per GB-second than x86_64.
    const architecture = lambda.Architecture.ARM_64;
    // The code asset is keyed by what this one binary is built from (never by the machine that
    // builds it), so changing another function's crate, or a test crate, does not change this
    // function (or its stack); an unbuilt synthesis gets another key and cannot be deployed.
    this.code = new RustCode(this, 'Code', {
      manifestPath: props.manifestPath,
      binaryName: fn.binaryName,
      sourceHash: fn.sourceHash,
      architecture,
    });
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: base.vpcId,
      availabilityZones: base.availabilityZones,
      isolatedSubnetIds: base.subnetIds,
    });
    // The function only places its network interfaces in these subnets; nothing reads their routes.
    Annotations.of(vpc).acknowledgeWarning('@aws-cdk/aws-ec2:noSubnetRouteTableId', 'the function never uses the subnets\' route tables');
    this.function = new lambda.Function(this, 'Function', {
      code: this.code.code,
      handler: 'bootstrap',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      functionName: props.functionName,
      architecture,
      description: `${fn.binaryName}: ${fn.routes.map((r) => `${r.method} ${r.path}`).join(', ')}`,
      memorySize: memoryOf(fn.binaryName),
      timeout: FUNCTION_TIMEOUT,
      // Cost: opt-in (see MIN_RESERVED_CONCURRENCY); the routes' throttles bound it either way.
      reservedConcurrentExecutions: props.reservedConcurrency,
      role: this.role,
      logGroup: this.logGroup,
      // JSON logs: Lambda sets AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL=INFO.
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.INFO,
      environment: {
        MESSAGES_DIR: MOUNT_PATH,
        MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
        // All three: every reader hides what retention removed, and the delete function reclaims it.
        MESSAGE_RETENTION_DAYS: String(props.retentionDays ?? DEFAULT_MESSAGE_RETENTION_DAYS),
        // The EMF `Deployment` dimension (shared/src/metrics.rs): this deployment's alarms and
        // dashboard read only its own functions' metrics, whatever else runs in the account.
        [DEPLOYMENT_ENV]: props.deploymentName,
      },
      // The base stack's isolated subnets and the functions' security group (NFS to the mount
      // targets only), imported through references that change when they are replaced.
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(this, 'SecurityGroup', base.functionSecurityGroupId, { mutable: false })],
      // The same mount path, identity and code on either file system; S3 Files also decides, per
      // function, whether reads may go straight to the bucket (DIRECT_S3_READ).
      filesystem: new AccessPointMount(base, clientActions, directS3ReadOf(fn.binaryName)),
    });

    // Each deploy of new code publishes a version (its logical id hashes the code and
    // configuration); the routes invoke the `live` alias, which CodeDeploy moves to it gradually.
    this.version = this.function.currentVersion;
    this.alias = new lambda.Alias(this, 'LiveAlias', {
      aliasName: LIVE_ALIAS,
      version: this.version,
      description: 'What the API routes invoke; CodeDeploy shifts it to each new version',
    });

    // The routes this function serves, from the workspace's route table. Each route gets an
    // invoke permission scoped to its own path (the integration's default). The API is imported
    // into this stack so that a JWT authorizer (jwt mode) is created here, next to the routes
    // that use it, not in the base stack (see RouteAuthorizers).
    const access = props.access ?? DEFAULT_ACCESS;
    const api = apigwv2.HttpApi.fromHttpApiAttributes(this, 'Api', { httpApiId: base.apiId });
    const authorizers = new RouteAuthorizers(access, `${fn.binaryName}-jwt`);
    // Integrated with the alias, so the invoke permissions are the alias's too.
    const integration = new HttpLambdaIntegration('Integration', this.alias);
    for (const route of fn.routes) {
      const httpRoute = new apigwv2.HttpRoute(this, routeConstructId(route), {
        httpApi: api,
        routeKey: apigwv2.HttpRouteKey.with(route.path, route.method as apigwv2.HttpMethod),
        integration,
        ...authorizers.forRoute(route),
      });
      // Security: switching access modes must not leave the previous mode's scopes on the route.
      pinRouteAuthorization(httpRoute, access);
      this.routes.push(httpRoute);
    }
    // Each route's own throttle, set once the route exists and removed before it is. One at a
    // time: they all update the same stage.
    const provider = SdkCallProvider.of(this, { logRetention: props.logRetention, removalPolicy: props.removalPolicy });
    const throttles = props.routeThrottles ?? DEFAULT_ROUTE_THROTTLES;
    fn.routes.forEach((route, i) => {
      const throttle = new RouteThrottle(this, `Throttle${routeConstructId(route).replace(/^Route/, '')}`, {
        httpApi: api,
        stageName: props.stageName,
        routeKey: `${route.method} ${route.path}`,
        limit: throttles[throttleClassOf(route.method)],
        provider,
      });
      throttle.node.addDependency(this.routes[i]);
      if (i > 0) {
        throttle.node.addDependency(this.routeThrottles[i - 1]);
      }
      this.routeThrottles.push(throttle);
    });

    // Security: only an explicit access=public leaves the routes without authorization
    // (the base stack then warns at synth).
    if (access.mode === 'public') {
      for (const route of this.routes) {
        Validations.of(route).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason:
            'Deployed with access=public, an explicit choice: anyone on the internet may read, post and delete ' +
            'messages. Every route has a throttle of its own; the default (access=iam) requires SigV4.',
        });
      }
    }
  }
}

/** A construct id for a route: `GET /messages/{id}` becomes `RouteGETmessagesid`. */
function routeConstructId(route: Route): string {
  return `Route${route.method}${route.path.replace(/[^A-Za-z0-9]/g, '')}`;
}
