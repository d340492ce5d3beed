import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { kinesisMockDataFile, persistenceEnv } from '../../../../src/dev/localstack/kinesis-mock';
import { persistenceArgs } from '../../../../src/dev/localstack/redis-server';
import { serviceDataDir } from '../../../../src/dev/localstack/stack';
import { checkpointReaches, checkpointsInto } from '../../../helpers/stack-faults';

describe('local stack persistence options', () => {
  it('redis: no persistence by default, an AOF fsynced on every write with a dir', () => {
    expect(persistenceArgs(undefined)).to.deep.equal(['--save', '', '--appendonly', 'no']);
    expect(persistenceArgs('/d')).to.deep.equal([
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--dir',
      '/d',
    ]);
  });

  it('kinesis-mock: nothing written or loaded without a dir; streams from the file once it exists', () => {
    const streams = { a: 2, b: 1 };
    expect(persistenceEnv({ streams })).to.deep.equal({
      SHOULD_PERSIST_DATA: 'false',
      LOAD_DATA_IF_EXISTS: 'false',
      INITIALIZE_STREAMS: 'a:2,b:1',
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'km-persist-'));
    try {
      const fresh = persistenceEnv({ streams, persistDir: dir, persistIntervalMs: 200 });
      expect(fresh).to.include({
        SHOULD_PERSIST_DATA: 'true',
        PERSIST_PATH: dir,
        PERSIST_FILE_NAME: 'kinesis-data.json',
        PERSIST_INTERVAL: '200ms',
        INITIALIZE_STREAMS: 'a:2,b:1',
      });
      fs.writeFileSync(kinesisMockDataFile(dir), '{}');
      expect(persistenceEnv({ streams, persistDir: dir })).to.not.have.property('INITIALIZE_STREAMS');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stack: one data dir per service, none in memory', () => {
    expect(serviceDataDir(undefined, 'dynalite')).to.equal(undefined);
    expect(serviceDataDir('/p', 'kinesis-mock')).to.equal(path.join('/p', 'kinesis'));
    expect(serviceDataDir('/p', 'redis-server')).to.equal(path.join('/p', 'redis'));
  });

  it('checkpoints compared with sequence numbers as integers; sentinels reach nothing', () => {
    expect(checkpointReaches('100', '99')).to.equal(true);
    expect(checkpointReaches('99', '100')).to.equal(false);
    expect(checkpointReaches('TRIM_HORIZON', '1')).to.equal(false);
    expect(checkpointReaches(undefined, '1')).to.equal(false);
    const batch = { s: { a: { firstSequenceNumber: '50' }, b: { firstSequenceNumber: '50' } } };
    const checkpoints = new Map([
      ['s/a', '49'],
      ['s/b', '50'],
    ]);
    expect(checkpointsInto(checkpoints, batch)).to.deep.equal(['s/b: 50']);
  });
});
