import { Aws, CfnOutput, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { ApiAccess, DEFAULT_ACCESS } from './access';
import { SdkCallProvider } from './sdk-call';
import { RouteMethod } from './workspace';

/** A token bucket: requests per second, steady, and the bucket's size. */
export interface ThrottleLimit {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

/** The methods with a throttle setting of their own; every route method maps to one (throttleClassOf). */
export const THROTTLED_METHODS = ['GET', 'POST', 'DELETE'] as const;
export type ThrottledMethod = (typeof THROTTLED_METHODS)[number];
export type RouteThrottles = Readonly<Record<ThrottledMethod, ThrottleLimit>>;

/**
 * The stage's default route throttle (context `throttleRateLimit`/`throttleBurstLimit`): what a
 * route without a throttle of its own gets, and the ceiling of every route's own throttle.
 */
export const DEFAULT_STAGE_THROTTLE: ThrottleLimit = { rateLimit: 50, burstLimit: 100 };

/**
 * Each route's own throttle, by method (context `<method>RateLimit`/`<method>BurstLimit`). API
 * Gateway keeps one bucket per route key, so `GET /` and `GET /messages` have one each.
 *  - GET 10/s, burst 20: reads are the expensive direction for a stranger (a page is up to 6 MB
 *    of EFS reads and data transfer out; see the worst-case table in README.md), and 10/s serves
 *    about 40 open message walls (each refreshes every 4 s) plus their bursts of 6 reads.
 *  - POST 1/s, burst 10: every stored byte is billed for the whole retention period, so the POST
 *    rate sets the storage bill (1/s × 256 KiB × 30 days is about 630 GiB per route); a burst of
 *    10 lets a person drop several files at once.
 *  - DELETE 1/s, burst 5: a person deletes one message at a time; DELETE of everything costs one
 *    request and reclaims in the background.
 */
export const DEFAULT_ROUTE_THROTTLES: RouteThrottles = {
  GET: { rateLimit: 10, burstLimit: 20 },
  POST: { rateLimit: 1, burstLimit: 10 },
  DELETE: { rateLimit: 1, burstLimit: 5 },
};

/** Which method's throttle a route gets: reads as GET, writes as POST, the rest as DELETE. */
export function throttleClassOf(method: RouteMethod): ThrottledMethod {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
      return 'GET';
    case 'POST':
    case 'PUT':
    case 'PATCH':
      return 'POST';
    default:
      return 'DELETE';
  }
}

/**
 * What the access log records about the caller, by access mode: the IAM principal's ARN (`iam`)
 * or the JWT's `sub` claim (`jwt`); never a token or a signature. `public` has no caller to
 * record beyond the source IP, which every mode logs.
 */
export function accessLogCaller(access: ApiAccess): Record<string, string> {
  switch (access.mode) {
    case 'iam':
      return { caller: '$context.identity.userArn' };
    case 'jwt':
      return { caller: '$context.authorizer.claims.sub' };
    case 'public':
      return {};
  }
}

export interface MessagesApiProps {
  /** The API's name in the console. @default 'EfsMessages-api' */
  readonly apiName?: string;
  /**
   * Steady-state requests per second of the stage's default route throttle: per route, for every
   * route without a throttle of its own (RouteThrottle), and their ceiling.
   * @default 50
   */
  readonly throttleRateLimit?: number;
  /**
   * Burst of the stage's default route throttle (per route, like the rate).
   * @default 100
   */
  readonly throttleBurstLimit?: number;
  /** How long access logs are kept. @default ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the access log group on stack deletion. @default DESTROY */
  readonly removalPolicy?: RemovalPolicy;
  /** The access mode: what the access log records about the caller. @default DEFAULT_ACCESS */
  readonly access?: ApiAccess;
}

/**
 * The HTTP API with its `$default` stage (throttled, access-logged) but without routes: each
 * function stack adds its own routes and integration, so one function deploys without the others.
 */
export class MessagesApi extends Construct {
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogGroup: logs.LogGroup;
  /** The API's base URL (`https://{id}.execute-api.{region}.amazonaws.com/`). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: MessagesApiProps = {}) {
    super(scope, id);

    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: props.apiName ?? 'EfsMessages-api',
      description: 'Messages stored on EFS: one Lambda function per HTTP method',
      // The stage is created below so that it can carry throttling and access logging. No
      // default integration: only the routes of the contract's table reach a function
      // (no `$default` catch-all route).
      createDefaultStage: false,
    });

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_WEEK,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    });

    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      // Routes live in the function stacks: auto-deploy publishes each stack's route changes
      // without a deployment resource that would tie the stacks together.
      autoDeploy: true,
      // Cost and abuse guard: excess requests get 429 before any Lambda invocation is billed. This
      // is the default route throttle (API Gateway applies it per route, not to the stage's sum):
      // each route of the contract gets a lower one of its own (RouteThrottle, in its function's
      // stack), and none may be set above this one.
      throttle: {
        rateLimit: props.throttleRateLimit ?? DEFAULT_STAGE_THROTTLE.rateLimit,
        burstLimit: props.throttleBurstLimit ?? DEFAULT_STAGE_THROTTLE.burstLimit,
      },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            requestTime: '$context.requestTime',
            httpMethod: '$context.httpMethod',
            routeKey: '$context.routeKey',
            path: '$context.path',
            status: '$context.status',
            protocol: '$context.protocol',
            responseLength: '$context.responseLength',
            responseLatency: '$context.responseLatency',
            integrationStatus: '$context.integrationStatus',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            error: '$context.error.message',
            ...accessLogCaller(props.access ?? DEFAULT_ACCESS),
          }),
        ),
      },
    });

    this.url = this.stage.url;
    new CfnOutput(this, 'Url', {
      key: 'ApiUrl',
      description: 'Base URL of the messages API; try: curl <ApiUrl>messages',
      value: this.url,
    });
  }
}

export interface RouteThrottleProps {
  readonly httpApi: apigwv2.IHttpApi;
  readonly stageName: string;
  /** The route key, e.g. `GET /messages/{id}`. */
  readonly routeKey: string;
  readonly limit: ThrottleLimit;
  /** The stack's deploy-time SDK calls. */
  readonly provider: SdkCallProvider;
}

/**
 * One route's own throttle on the stage (`RouteSettings[routeKey]`), set with
 * `apigatewayv2:UpdateStage` by a custom resource in the stack that owns the route.
 *
 * Why not the stage's `RouteSettings` property: API Gateway refuses route settings for a route
 * key that does not exist ("Unable to find Route by key ... within the provided RouteSettings"),
 * and the routes live in the function stacks, deployed after the base stack that holds the stage.
 * A route's throttle is created after its route (an explicit dependency) and deleted before it
 * (`DeleteRouteSettings`), so no setting ever names a missing route, whether a function stack is
 * deployed alone, a route changes, or a stack is destroyed.
 */
export class RouteThrottle extends Construct {
  readonly resource: cr.AwsCustomResource;

  constructor(scope: Construct, id: string, props: RouteThrottleProps) {
    super(scope, id);
    const { httpApi, stageName, routeKey, limit } = props;
    const stageArn = `arn:${Aws.PARTITION}:apigateway:${Aws.REGION}::/apis/${httpApi.apiId}/stages/${stageName}`;
    const where = { ApiId: httpApi.apiId, StageName: stageName };
    this.resource = props.provider.call(this, 'Resource', {
      resourceType: 'Custom::RouteThrottle',
      onCreate: {
        service: 'ApiGatewayV2',
        action: 'updateStage',
        parameters: {
          ...where,
          RouteSettings: { [routeKey]: { ThrottlingRateLimit: limit.rateLimit, ThrottlingBurstLimit: limit.burstLimit } },
        },
        physicalResourceId: cr.PhysicalResourceId.of(`${httpApi.apiId}/${stageName}/${routeKey}`),
      },
      onDelete: {
        service: 'ApiGatewayV2',
        action: 'deleteRouteSettings',
        parameters: { ...where, RouteKey: routeKey },
        // Already gone (the stage, the API, or the setting): nothing left to remove.
        ignoreErrorCodesMatching: 'NotFoundException',
      },
      statements: [
        new iam.PolicyStatement({ actions: ['apigateway:PATCH'], resources: [stageArn] }),
        new iam.PolicyStatement({ actions: ['apigateway:DELETE'], resources: [`${stageArn}/routesettings/*`] }),
      ],
    });
    const policy = this.resource.node.findChild('CustomResourcePolicy');
    const reason =
      "DeleteRouteSettings on this API's stage only: a route key (`DELETE /messages/{id}`) has a space and " +
      'braces, and the policy names the route settings of this one stage rather than guess how IAM spells a key.';
    // cdk-nag names the resource as the template spells it, and the API id comes from the base
    // stack through a cross-stack reference that CDK renders only once it has prepared the app:
    // the acknowledgement is added then (construct validation runs after that, before cdk-nag).
    policy.node.addValidation({
      validate: () => {
        const apiId = Token.isUnresolved(httpApi.apiId)
          ? JSON.stringify(Stack.of(policy).resolve(httpApi.apiId))
          : httpApi.apiId;
        Validations.of(policy).acknowledge({ id: routeSettingsFinding(apiId, stageName), reason });
        return [];
      },
    });
  }
}

/** cdk-nag's name for the route-settings wildcard of RouteThrottle's policy (API id as rendered). */
export function routeSettingsFinding(renderedApiId: string, stageName: string): string {
  return (
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::/apis/' +
    `${renderedApiId}/stages/${stageName}/routesettings/*]`
  );
}
