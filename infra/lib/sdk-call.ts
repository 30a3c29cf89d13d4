import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';

export interface SdkCallProviderProps {
  /** How long the provider function's logs are kept. @default ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to that log group on stack deletion. @default DESTROY */
  readonly removalPolicy?: RemovalPolicy;
}

export interface SdkCallProps {
  /** The call made when the resource is created and, unless `onUpdate` is given, updated. */
  readonly onCreate: cr.AwsSdkCall;
  /** @default onCreate */
  readonly onUpdate?: cr.AwsSdkCall;
  readonly onDelete?: cr.AwsSdkCall;
  /** Exactly what the calls need: a policy of this resource's own, attached before it runs. */
  readonly statements: iam.PolicyStatement[];
  /** The resource type shown by CloudFormation, e.g. `Custom::RouteThrottle`. */
  readonly resourceType: string;
}

/**
 * The role and log group of one stack's `AwsCustomResource` provider (CDK's singleton Lambda
 * function that makes an AWS SDK call when a custom resource is created, updated or deleted).
 *
 * Without them CDK gives that function a role with the AWS-managed AWSLambdaBasicExecutionRole
 * and lets Lambda create a log group that never expires. Here the role has no managed policy and
 * may only write to its own log group, which keeps its logs as long as the app's other logs; each
 * custom resource adds its own least-privilege policy (see `call`).
 */
export class SdkCallProvider extends Construct {
  /** The stack's provider: created by the first caller, with that caller's settings. */
  static of(scope: Construct, props: SdkCallProviderProps = {}): SdkCallProvider {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(SDK_CALLS_ID);
    return existing instanceof SdkCallProvider ? existing : new SdkCallProvider(stack, SDK_CALLS_ID, props);
  }

  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  private constructor(scope: Construct, id: string, props: SdkCallProviderProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_WEEK,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Deploy-time AWS SDK calls of this stack (CDK AwsCustomResource provider)',
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
  }

  /** One custom resource that makes the given SDK calls, with exactly the given permissions. */
  call(scope: Construct, id: string, props: SdkCallProps): cr.AwsCustomResource {
    const resource = new cr.AwsCustomResource(scope, id, {
      resourceType: props.resourceType,
      onCreate: props.onCreate,
      onUpdate: props.onUpdate ?? props.onCreate,
      onDelete: props.onDelete,
      policy: cr.AwsCustomResourcePolicy.fromStatements(props.statements),
      role: this.role,
      logGroup: this.logGroup,
      // The SDK in Lambda's Node.js runtime has every call used here: nothing to download.
      installLatestAwsSdk: false,
      timeout: Duration.minutes(2),
    });
    // The role's own grant (its log group) is in place before the first call, like the call's policy.
    resource.node.addDependency(this.role);
    return resource;
  }
}

const SDK_CALLS_ID = 'SdkCalls';
