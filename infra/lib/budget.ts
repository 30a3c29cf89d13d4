import { Aws } from 'aws-cdk-lib';
import * as budgets from 'aws-cdk-lib/aws-budgets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { AlarmTopic } from './alarms';

/** Validates context `monthlyBudgetUsd`: a positive amount of US dollars, cents at most. */
export function parseMonthlyBudget(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') {
    return undefined;
  }
  const value = Number(raw.trim());
  if (!/^\d+(\.\d{1,2})?$/.test(raw.trim()) || !Number.isFinite(value) || value <= 0) {
    throw new Error(`context 'monthlyBudgetUsd' must be a positive amount of US dollars (e.g. 20 or 12.50), got '${raw}'`);
  }
  return value;
}

/** When the budget notifies: [type, percent of the monthly amount]. */
export const BUDGET_NOTIFICATIONS: ReadonlyArray<readonly ['ACTUAL' | 'FORECASTED', number]> = [
  ['ACTUAL', 80],
  ['ACTUAL', 100],
  ['FORECASTED', 100],
];

export interface SpendBudgetProps {
  /** The budget's name (unique in the account). */
  readonly budgetName: string;
  readonly monthlyUsd: number;
  /** The alarm topic: the budget notifies it, like every alarm. */
  readonly alarmTopic: AlarmTopic;
}

/**
 * An AWS Budgets cost budget for the month (context `monthlyBudgetUsd`) that notifies the alarm
 * topic when the actual spend passes 80 % and 100 % of it, and when AWS forecasts the month's
 * spend above it. It covers the whole account's unblended cost (a budget cannot select one
 * deployment's resources without a cost allocation tag activated in the Billing console), so
 * deploy to an account of its own for a budget that means this app.
 *
 * Budgets publishes to the topic as `budgets.amazonaws.com`: the topic's policy allows it for this
 * account's budgets only, and the topic's key (a customer-managed key, see AlarmTopic) lets it
 * encrypt, as it lets CloudWatch. Notifications only: a budget stops nothing.
 */
export class SpendBudget extends Construct {
  readonly budget: budgets.CfnBudget;

  constructor(scope: Construct, id: string, props: SpendBudgetProps) {
    super(scope, id);
    const { topic, key } = props.alarmTopic;
    const budgetsService = new iam.ServicePrincipal('budgets.amazonaws.com');
    // AWS Cost Management guide, "Creating an Amazon SNS topic for budget notifications".
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'BudgetsPublish',
        principals: [budgetsService],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:budgets::${Aws.ACCOUNT_ID}:*` },
        },
      }),
    );
    // The same two actions AWS documents for any service publishing to an encrypted topic.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'BudgetsPublish',
        principals: [budgetsService],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'], // in a key policy, "*" is this key
      }),
    );
    this.budget = new budgets.CfnBudget(this, 'Budget', {
      budget: {
        budgetName: props.budgetName,
        budgetType: 'COST',
        timeUnit: 'MONTHLY',
        budgetLimit: { amount: props.monthlyUsd, unit: 'USD' },
      },
      notificationsWithSubscribers: BUDGET_NOTIFICATIONS.map(([notificationType, threshold]) => ({
        notification: { notificationType, comparisonOperator: 'GREATER_THAN', threshold, thresholdType: 'PERCENTAGE' },
        subscribers: [{ subscriptionType: 'SNS', address: topic.topicArn }],
      })),
    });
    // Created once the topic's policy and key policy let Budgets publish.
    this.budget.node.addDependency(topic, key);
  }
}
