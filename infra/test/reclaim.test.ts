import { Template } from 'aws-cdk-lib/assertions';
import { deletesEverything, RECLAIM_RATE } from '../lib/reclaim';
import { FUNCTION_NAMES, functionStackName, resourcesOfType, synth } from './helpers';

describe('reclaiming: the delete function runs on a schedule', () => {
  const { templates } = synth();

  test('the function that serves DELETE /messages gets a one-minute rule on its live alias', () => {
    const json = templates[functionStackName('delete-messages')];
    const template = Template.fromJSON(json);
    const [[aliasId]] = resourcesOfType(json, 'AWS::Lambda::Alias');
    const rules = resourcesOfType(json, 'AWS::Events::Rule');
    expect(rules).toHaveLength(1);
    const [[ruleId, rule]] = rules;
    expect(rule.Properties.ScheduleExpression).toBe(`rate(${RECLAIM_RATE.toMinutes()} minute)`);
    expect(rule.Properties.State).toBe('ENABLED');
    expect(rule.Properties.Targets).toHaveLength(1);
    expect(rule.Properties.Targets[0].Arn).toEqual({ Ref: aliasId });
    expect(rule.Properties.Targets[0].RetryPolicy).toEqual({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 });
    // Only EventBridge, only for this rule, may invoke the alias this way.
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { Ref: aliasId },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
    });
    // No custom input: the function sees EventBridge's standard scheduled event.
    expect(rule.Properties.Targets[0].Input).toBeUndefined();
  });

  test.each(FUNCTION_NAMES.filter((name) => name !== 'delete-messages'))('%s has no schedule', (binary) => {
    const json = templates[functionStackName(binary)];
    expect(resourcesOfType(json, 'AWS::Events::Rule')).toHaveLength(0);
    Template.fromJSON(json).resourcePropertiesCountIs(
      'AWS::Lambda::Permission',
      { Principal: 'events.amazonaws.com' },
      0,
    );
  });

  test('which function deletes everything is read from the route table', () => {
    const route = (method: any, path: string) => ({ method, path, functionName: 'f' });
    expect(deletesEverything([route('DELETE', '/messages')])).toBe(true);
    expect(deletesEverything([route('DELETE', '/')])).toBe(true);
    expect(deletesEverything([route('DELETE', '/messages/{id}')])).toBe(false);
    expect(deletesEverything([route('GET', '/messages'), route('POST', '/messages')])).toBe(false);
  });
});
