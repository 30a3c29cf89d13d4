import { Annotations, Validations } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';

/** How CodeDeploy shifts a function's `live` alias to a new version (context `deployment`). */
export const DEPLOYMENT_STYLES = {
  /** The default: 10 % of the traffic for 5 minutes, then the rest. */
  canary: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES,
  /** 10 % more every minute (10 minutes in all). */
  linear: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_1MINUTE,
  /** Everything at once (still rolled back if the alarm fires while CodeDeploy watches). */
  allAtOnce: codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
} as const;
export type DeploymentStyle = keyof typeof DEPLOYMENT_STYLES;
export const DEFAULT_DEPLOYMENT_STYLE: DeploymentStyle = 'canary';

export function parseDeploymentStyle(raw: string | undefined): DeploymentStyle {
  const value = raw ?? DEFAULT_DEPLOYMENT_STYLE;
  if (!Object.keys(DEPLOYMENT_STYLES).includes(value)) {
    throw new Error(`context 'deployment' must be one of ${Object.keys(DEPLOYMENT_STYLES).join(', ')}, got '${raw}'`);
  }
  return value as DeploymentStyle;
}

/**
 * Context `skipCanary=true`: the escape hatch for an emergency fix. This deploy shifts each
 * deployed function's `live` alias to its new version all at once (CodeDeploy's AllAtOnce), still
 * rolled back if the new version's own error alarm fires. It is a flag of one command, never a
 * persisted setting: the next deploy without it puts the deployment group back to `deployment`.
 */
export const SKIP_CANARY = 'skipCanary';

export function parseSkipCanary(raw: unknown): boolean {
  if (raw === undefined || raw === null || raw === false || raw === 'false') {
    return false;
  }
  if (raw === true || raw === 'true') {
    return true;
  }
  throw new Error(`context '${SKIP_CANARY}' must be true or false, got '${String(raw)}'`);
}

export interface SafeDeploymentProps {
  readonly alias: lambda.Alias;
  readonly style: DeploymentStyle;
  /** Context `skipCanary`: all at once for this deploy, whatever `style` says. @default false */
  readonly skipCanary?: boolean;
  /** The alias's error alarm: a deployment in progress is rolled back when it fires. */
  readonly rollbackAlarm: cw.IAlarm;
}

/**
 * A CodeDeploy deployment group for one function: each new version reaches the `live` alias (and
 * so the routes) gradually, and is rolled back automatically when the alias's error alarm fires
 * or the deployment fails.
 */
export class SafeDeployment extends Construct {
  readonly deploymentGroup: codedeploy.LambdaDeploymentGroup;

  constructor(scope: Construct, id: string, props: SafeDeploymentProps) {
    super(scope, id);
    this.deploymentGroup = new codedeploy.LambdaDeploymentGroup(this, 'Group', {
      alias: props.alias,
      deploymentConfig: DEPLOYMENT_STYLES[props.skipCanary ? 'allAtOnce' : props.style],
      alarms: [props.rollbackAlarm],
      autoRollback: { failedDeployment: true, stoppedDeployment: true, deploymentInAlarm: true },
    });
    if (props.skipCanary && props.style !== 'allAtOnce') {
      Annotations.of(this).addWarningV2(
        '@efs-messages:skipCanary',
        `skipCanary=true: this deploy moves all of the function's traffic to its new version at once, not ${props.style} ` +
          '(still rolled back if the new version\'s error alarm fires). The next deploy without it goes back to ' +
          `deployment=${props.style}.`,
      );
    }
    // CDK always attaches AWSCodeDeployRoleForLambdaLimited to the group's role, even to a role
    // passed in, so a role "of our own" would still carry it: acknowledged instead.
    Validations.of(this.deploymentGroup.role).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]',
      reason:
        "CodeDeploy's service role for this one deployment group. AWSCodeDeployRoleForLambdaLimited is AWS's " +
        'narrowest policy for Lambda deployments (get/update an alias, describe alarms, publish to SNS, invoke ' +
        'CodeDeployHook_* functions only), maintained by AWS as CodeDeploy changes; CDK attaches it to any role ' +
        'the deployment group uses.',
    });
  }
}
