import { App, CfnOutput, DefaultStackSynthesizer, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** GitHub Actions' OIDC token issuer (its `iss`, and the IAM provider's URL without https://). */
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';
/** The audience aws-actions/configure-aws-credentials asks GitHub for (its `audience` default). */
export const GITHUB_OIDC_AUDIENCE = 'sts.amazonaws.com';
/** The GitHub deployment environment the deploy job runs in (`environment:` of deploy.yml). */
export const DEFAULT_GITHUB_ENVIRONMENT = 'production';
export const DEFAULT_GITHUB_BRANCH = 'main';
/**
 * The roles `cdk bootstrap` creates that the CDK CLI assumes to deploy:
 * `cdk-<qualifier>-<name>-role-<account>-<region>`. CloudFormation itself uses a fifth one,
 * cfn-exec, passed by the deploy role: this role never needs it.
 */
export const CDK_BOOTSTRAP_ROLES = ['deploy', 'file-publishing', 'image-publishing', 'lookup'] as const;

/** The deploy-role stack's name for a `stackPrefix`. */
export const deployRoleStackName = (stackPrefix: string) => `${stackPrefix}-github-deploy-role`;

export interface GitHubDeployRoleProps extends StackProps {
  /** `owner/name` of the repository whose workflows may deploy. Context `githubRepository`. */
  readonly repository: string;
  /** Context `githubEnvironment`. @default DEFAULT_GITHUB_ENVIRONMENT */
  readonly environment?: string;
  /** Context `githubBranch`. @default DEFAULT_GITHUB_BRANCH */
  readonly branch?: string;
  /**
   * An existing GitHub OIDC provider of the account (an account has at most one per URL).
   * Context `githubOidcProviderArn`. @default this stack creates it
   */
  readonly oidcProviderArn?: string;
  /** The CDK bootstrap qualifier. @default the app's `@aws-cdk/core:bootstrapQualifier` or hnb659fds */
  readonly bootstrapQualifier?: string;
}

const REPOSITORY = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/[A-Za-z0-9._-]{1,100}$/;
// GitHub allows most characters in environment and branch names; these are the ones an IAM
// StringEquals value can carry without surprise (no wildcards, no colon: the claim's separator).
const NAME = /^[A-Za-z0-9._\/ -]{1,255}$/;
const OIDC_PROVIDER_ARN = new RegExp(`^arn:aws[a-z-]*:iam::\\d{12}:oidc-provider/${GITHUB_OIDC_HOST.replace(/\./g, '\\.')}$`);

/**
 * The optional stack a GitHub Actions workflow deploys with: GitHub's OIDC provider (or the
 * account's existing one) and a role that only `repository`'s `branch` and deployment
 * `environment` can assume, and that may only assume the CDK bootstrap roles. No long-lived key
 * exists anywhere: each job gets a one-hour session from its own OIDC token.
 */
export class GitHubDeployRoleStack extends Stack {
  readonly role: iam.Role;
  readonly provider: iam.IOidcProvider;
  /** The `sub` claims the role trusts. */
  readonly subjects: string[];

  constructor(scope: Construct, id: string, props: GitHubDeployRoleProps) {
    super(scope, id, props);
    const environment = props.environment ?? DEFAULT_GITHUB_ENVIRONMENT;
    const branch = props.branch ?? DEFAULT_GITHUB_BRANCH;
    if (!REPOSITORY.test(props.repository)) {
      throw new Error(`context 'githubRepository' must be owner/name, got '${props.repository}'`);
    }
    if (!NAME.test(environment)) {
      throw new Error(`context 'githubEnvironment' is not a plain environment name: '${environment}'`);
    }
    if (!NAME.test(branch)) {
      throw new Error(`context 'githubBranch' is not a plain branch name: '${branch}'`);
    }
    if (props.oidcProviderArn !== undefined && !OIDC_PROVIDER_ARN.test(props.oidcProviderArn)) {
      throw new Error(
        `context 'githubOidcProviderArn' must be arn:aws:iam::<account>:oidc-provider/${GITHUB_OIDC_HOST}, got '${props.oidcProviderArn}'`,
      );
    }

    this.provider = props.oidcProviderArn
      ? iam.OidcProviderNative.fromOidcProviderArn(this, 'GitHubOidc', props.oidcProviderArn)
      : new iam.OidcProviderNative(this, 'GitHubOidc', {
          url: `https://${GITHUB_OIDC_HOST}`,
          clientIds: [GITHUB_OIDC_AUDIENCE],
        });

    // GitHub's `sub` names the environment when the job has one, else the branch: the deploy
    // job runs in `environment` (restricted to `branch` by the environment's protection rules, a
    // one-time setting in the repository), and a job on `branch` without an environment is the
    // other form. Exact values: no wildcard admits another repository, branch or environment.
    this.subjects = [`repo:${props.repository}:environment:${environment}`, `repo:${props.repository}:ref:refs/heads/${branch}`];
    this.role = new iam.Role(this, 'Role', {
      description: `GitHub Actions deploys of ${props.repository} (${branch}, environment ${environment}): may only assume the CDK bootstrap roles`,
      assumedBy: new iam.WebIdentityPrincipal(this.provider.oidcProviderArn, {
        StringEquals: {
          [`${GITHUB_OIDC_HOST}:aud`]: GITHUB_OIDC_AUDIENCE,
          [`${GITHUB_OIDC_HOST}:sub`]: this.subjects,
        },
      }),
    });

    // What the CDK CLI does with its credentials: assume the bootstrap roles of this account and
    // region, which hold the deploy permissions (CloudFormation, the asset bucket, lookups).
    const qualifier =
      props.bootstrapQualifier ??
      (this.node.tryGetContext('@aws-cdk/core:bootstrapQualifier') as string | undefined) ??
      DefaultStackSynthesizer.DEFAULT_QUALIFIER;
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['sts:AssumeRole'],
        resources: CDK_BOOTSTRAP_ROLES.map((name) =>
          Stack.of(this).formatArn({
            service: 'iam',
            region: '',
            resource: 'role',
            resourceName: `cdk-${qualifier}-${name}-role-${this.account}-${this.region}`,
          }),
        ),
      }),
    );

    new CfnOutput(this, 'RoleArn', {
      value: this.role.roleArn,
      description: 'Repository variable AWS_ROLE_ARN of the deploy workflow',
    });
  }
}

/**
 * The deploy-role stack when context `githubRepository` is set (with `githubEnvironment`,
 * `githubBranch`, `githubOidcProviderArn`); nothing otherwise.
 */
export function addGitHubDeployRole(app: App, stackPrefix: string): GitHubDeployRoleStack | undefined {
  const context = (key: string): string | undefined => {
    const value = app.node.tryGetContext(key);
    return value === undefined || value === null || value === '' ? undefined : String(value);
  };
  const repository = context('githubRepository');
  if (repository === undefined) {
    return undefined;
  }
  return new GitHubDeployRoleStack(app, deployRoleStackName(stackPrefix), {
    description: `Messages API: the role GitHub Actions of ${repository} deploy with (OIDC, no keys)`,
    repository,
    environment: context('githubEnvironment'),
    branch: context('githubBranch'),
    oidcProviderArn: context('githubOidcProviderArn'),
  });
}
