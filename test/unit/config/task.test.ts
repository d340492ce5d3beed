import { expect } from 'chai';
import { resolveTaskId, TASK_ID_ENV } from '../../../src/config/task';

describe('config/task: the task identity', () => {
  it('is AGGREGATOR_TASK_ID when set, else the hostname', () => {
    expect(TASK_ID_ENV).to.equal('AGGREGATOR_TASK_ID');
    expect(resolveTaskId({ AGGREGATOR_TASK_ID: 'task-7' }, 'ip-10-0-1-2')).to.equal('task-7');
    expect(resolveTaskId({}, 'ip-10-0-1-2')).to.equal('ip-10-0-1-2');
  });

  it('a blank value counts as unset; surrounding spaces are dropped', () => {
    expect(resolveTaskId({ AGGREGATOR_TASK_ID: '' }, 'host-a')).to.equal('host-a');
    expect(resolveTaskId({ AGGREGATOR_TASK_ID: '   ' }, 'host-a')).to.equal('host-a');
    expect(resolveTaskId({ AGGREGATOR_TASK_ID: ' t1 ' }, 'host-a')).to.equal('t1');
  });

  it('accepts an ECS task ARN or id and rejects anything else with the variable named', () => {
    const arn = 'arn:aws:ecs:us-east-1:123456789012:task/agg/0123456789abcdef0123456789abcdef';
    expect(resolveTaskId({ AGGREGATOR_TASK_ID: arn }, 'h')).to.equal(arn);
    expect(() => resolveTaskId({ AGGREGATOR_TASK_ID: 'a b' }, 'h')).to.throw(
      'config key AGGREGATOR_TASK_ID: expected 1 to 128 characters among A-Z a-z 0-9 . _ : @ / -, got "a b"',
    );
    expect(() => resolveTaskId({ AGGREGATOR_TASK_ID: 'x'.repeat(129) }, 'h')).to.throw(/AGGREGATOR_TASK_ID/);
  });
});
