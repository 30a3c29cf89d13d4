import { ArnFormat, CfnElement, CfnOutput, Stack, Validations } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { Route, RouteMethod } from './workspace';

/**
 * Who may call the deployed API (context `access`). The contract makes the API private by
 * default; opening it to the internet is an explicit choice.
 */
export type ApiAccess =
  /** Every route requires a SigV4-signed request from an IAM principal allowed `execute-api:Invoke`. */
  | { readonly mode: 'iam' }
  /** Every route requires a JWT from `issuer` for one of `audience`, carrying the method's scope. */
  | { readonly mode: 'jwt'; readonly issuer: string; readonly audience: string[] }
  /** No authorization at all: anyone on the internet may read, write and delete. */
  | { readonly mode: 'public' };

export const ACCESS_MODES = ['iam', 'jwt', 'public'] as const;
export type AccessMode = (typeof ACCESS_MODES)[number];

/** The default: private, SigV4. */
export const DEFAULT_ACCESS: ApiAccess = { mode: 'iam' };

/** The JWT scope a route of each method requires (`jwt` mode): one token can read without deleting. */
export const JWT_SCOPES: Readonly<Record<RouteMethod, string>> = {
  GET: 'messages/read',
  HEAD: 'messages/read',
  OPTIONS: 'messages/read',
  POST: 'messages/write',
  PUT: 'messages/write',
  PATCH: 'messages/write',
  DELETE: 'messages/delete',
  ANY: 'messages/delete',
};

/** The IAM policies of `iam` mode and the methods each may invoke (least privilege per method). */
export const ACCESS_TIERS = {
  reader: ['GET', 'HEAD', 'OPTIONS'],
  writer: ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH'],
  admin: ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE', 'ANY'],
} as const satisfies Record<string, readonly RouteMethod[]>;
export type AccessTier = keyof typeof ACCESS_TIERS;

/**
 * Parses and validates the access settings (context `access`, `jwtIssuer`, `jwtAudience`).
 * `jwtAudience` may list several audiences separated by commas.
 */
export function parseAccess(mode: string | undefined, jwtIssuer: string | undefined, jwtAudience: string | undefined): ApiAccess {
  const value = (mode ?? 'iam').trim().toLowerCase();
  if (!(ACCESS_MODES as readonly string[]).includes(value)) {
    throw new Error(`context 'access' must be one of ${ACCESS_MODES.join(', ')}, got '${mode}'`);
  }
  if (value !== 'jwt') {
    if (jwtIssuer !== undefined || jwtAudience !== undefined) {
      throw new Error(`context 'jwtIssuer'/'jwtAudience' only apply with access=jwt (access is '${value}')`);
    }
    return value === 'public' ? { mode: 'public' } : { mode: 'iam' };
  }
  if (!jwtIssuer || !jwtAudience) {
    throw new Error("access=jwt needs both context 'jwtIssuer' (https URL) and 'jwtAudience'");
  }
  let url: URL;
  try {
    url = new URL(jwtIssuer);
  } catch {
    throw new Error(`context 'jwtIssuer' must be an https URL, got '${jwtIssuer}'`);
  }
  // API Gateway fetches the issuer's OIDC discovery document and keys over HTTPS only.
  if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new Error(`context 'jwtIssuer' must be an https URL without query, fragment or credentials, got '${jwtIssuer}'`);
  }
  const audience = jwtAudience.split(',').map((a) => a.trim());
  if (audience.some((a) => a === '' || /\s/.test(a))) {
    throw new Error(`context 'jwtAudience' must be one or more comma-separated non-empty values, got '${jwtAudience}'`);
  }
  return { mode: 'jwt', issuer: jwtIssuer, audience };
}

/** The execute-api ARN of one route of the `$default` stage: path parameters match any one value. */
export function routeInvokeArn(stack: Stack, apiId: string, stageName: string, route: Route): string {
  // `/messages/{id}` -> `messages/*`; `/` -> `` (the ARN then ends in `GET/`).
  const path = route.path.replace(/^\//, '').replace(/\{[^}]+\}/g, '*');
  return stack.formatArn({
    service: 'execute-api',
    resource: apiId,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    resourceName: `${stageName}/${route.method}/${path}`,
  });
}

export interface AccessPoliciesProps {
  readonly httpApi: apigwv2.IHttpApi;
  readonly stage: apigwv2.IHttpStage;
  /** The route table (all functions). */
  readonly routes: Route[];
}

/**
 * `iam` mode: three customer-managed policies, reader (GET), writer (GET, POST) and admin (all
 * methods), each allowing `execute-api:Invoke` on exactly its methods' routes of this API and
 * stage, with their ARNs as stack outputs. Attach one to a role or user; nothing else is granted.
 */
export class AccessPolicies extends Construct {
  readonly policies: Record<AccessTier, iam.ManagedPolicy>;

  constructor(scope: Construct, id: string, props: AccessPoliciesProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const make = (tier: AccessTier, outputKey: string): iam.ManagedPolicy => {
      const methods: readonly RouteMethod[] = ACCESS_TIERS[tier];
      const routes = props.routes.filter((r) => methods.includes(r.method));
      const policy = new iam.ManagedPolicy(this, tier, {
        description: `Messages API ${tier}: ${routes.map((r) => `${r.method} ${r.path}`).join(', ')}`,
        statements: [
          new iam.PolicyStatement({
            actions: ['execute-api:Invoke'],
            resources: routes.map((r) => routeInvokeArn(stack, props.httpApi.apiId, props.stage.stageName, r)),
          }),
        ],
      });
      // The only wildcards are path parameters: `/messages/{id}` must match every message id.
      // cdk-nag names each wildcard resource as it appears in the template.
      const apiLogicalId = stack.resolve((props.httpApi.node.defaultChild as CfnElement).logicalId);
      for (const route of routes.filter((r) => r.path.includes('{'))) {
        const path = route.path.replace(/^\//, '').replace(/\{[^}]+\}/g, '*');
        Validations.of(policy).acknowledge({
          id:
            'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:' +
            `<${apiLogicalId}>/${props.stage.stageName}/${route.method}/${path}]`,
          reason:
            "The only wildcard is the value of the route's path parameter (`/messages/{id}` -> `messages/*`): the " +
            'policy must allow every message id of that one route, method and stage of this API.',
        });
      }
      new CfnOutput(this, `${tier}Arn`, {
        key: outputKey,
        description: `Attach to a role or user to allow ${methods.filter((m) => routes.some((r) => r.method === m)).join(', ')} on the messages API (SigV4)`,
        value: policy.managedPolicyArn,
      });
      return policy;
    };
    this.policies = {
      reader: make('reader', 'ReaderPolicyArn'),
      writer: make('writer', 'WriterPolicyArn'),
      admin: make('admin', 'AdminPolicyArn'),
    };
  }
}

/**
 * Makes a route's authorization complete in the template whatever the mode, so that switching
 * modes can never leave a property of the previous mode on the route.
 *
 * CloudFormation's `AWS::ApiGatewayV2::Route` handler updates a route with API Gateway's
 * UpdateRoute, which leaves any field it is not given unchanged: a property removed from the
 * template stays on the route (aws-cloudformation/cloudformation-coverage-roadmap#2184, an
 * authorizer that stays attached; aws/aws-cdk#20695; go-to-k/cdkd#1163, which found the same for
 * AuthorizationScopes by probing the API). Going from `jwt` to `iam` or `public` would then keep
 * the JWT scopes on a route whose type no longer allows them, and API Gateway refuses that:
 * "Authorization Scopes are only valid for COGNITO_USER_POOLS and JWT authorization types"
 * (the error quoted in aws/aws-cdk#27576). So:
 *  - `AuthorizationType` is always explicit (`AWS_IAM`, `JWT`, or `NONE`, which CDK renders for a
 *    route without an authorizer since aws/aws-cdk#14424); a non-JWT type detaches the authorizer;
 *  - `AuthorizationScopes` is always explicit: the method's scope with `jwt`, an empty list
 *    otherwise, which clears the previous mode's scopes (CDK drops an empty list, hence the override).
 */
export function pinRouteAuthorization(route: apigwv2.HttpRoute, access: ApiAccess): void {
  if (access.mode !== 'jwt') {
    (route.node.defaultChild as apigwv2.CfnRoute).addPropertyOverride('AuthorizationScopes', []);
  }
}

/** How one route is authorized: the authorizer (none in `public` mode) and its scopes. */
export interface RouteAuthorization {
  readonly authorizer?: apigwv2.IHttpRouteAuthorizer;
  readonly authorizationScopes?: string[];
}

/**
 * The authorizers of one function stack. In `jwt` mode each function stack owns its own JWT
 * authorizer (same issuer and audience): CloudFormation then switches a stack's routes to another
 * mode before it deletes that stack's authorizer, whereas an authorizer in the base stack would be
 * deleted (and refused, still in use) before the function stacks' routes move.
 */
export class RouteAuthorizers {
  private readonly jwt?: HttpJwtAuthorizer;
  private readonly iam?: HttpIamAuthorizer;

  constructor(private readonly access: ApiAccess, authorizerName: string) {
    if (access.mode === 'jwt') {
      this.jwt = new HttpJwtAuthorizer('JwtAuthorizer', access.issuer, {
        jwtAudience: access.audience,
        authorizerName,
        identitySource: ['$request.header.Authorization'],
      });
    } else if (access.mode === 'iam') {
      this.iam = new HttpIamAuthorizer();
    }
  }

  forRoute(route: Route): RouteAuthorization {
    switch (this.access.mode) {
      case 'iam':
        return { authorizer: this.iam };
      case 'jwt':
        return { authorizer: this.jwt, authorizationScopes: [JWT_SCOPES[route.method]] };
      case 'public':
        return {};
    }
  }
}
