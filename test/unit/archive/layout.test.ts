import { expect } from 'chai';
import { hourPath, hourSpan, objectKey, parseArchiveRoot, parseObjectKey } from '../../../src/archive/layout';

// Issue 16: the archive's keys are those a Firehose delivery stream writes, and parse back.

const T = Date.UTC(2026, 11, 6, 14, 5, 9, 250);

describe('archive layout', function () {
  it('an object key is <stream>/YYYY/MM/DD/HH/<delivery>-1-YYYY-MM-DD-HH-MM-SS-<id>[.gz] (UTC)', function () {
    const parts = {
      stream: 'btc-trade',
      delivery: 'btc-trade-archive',
      timeMs: T,
      id: 'ab12-cd',
      gzip: false,
    };
    expect(objectKey(parts)).to.equal(
      'btc-trade/2026/12/06/14/btc-trade-archive-1-2026-12-06-14-05-09-ab12-cd',
    );
    expect(objectKey({ ...parts, gzip: true })).to.match(/-ab12-cd\.gz$/);
  });

  it('a key parses back to its stream, delivery, hour, time (to the second), id and compression', function () {
    const key = objectKey({ stream: 's', delivery: 'd-x-1', timeMs: T, id: 'f00-9', gzip: true });
    expect(parseObjectKey(key)).to.deep.equal({
      stream: 's',
      delivery: 'd-x-1',
      timeMs: T - 250,
      id: 'f00-9',
      gzip: true,
      hourMs: Date.UTC(2026, 11, 6, 14),
    });
  });

  it('keys not in the layout do not parse: another folder layout, a time outside the folder hour, no date', function () {
    expect(parseObjectKey('s/2026/12/06/d-1-2026-12-06-14-05-09-x')).to.equal(undefined);
    expect(parseObjectKey('s/2026/12/06/14/d-1-2026-12-06-15-05-09-x')).to.equal(undefined);
    expect(parseObjectKey('s/2026/02/30/14/d-1-2026-02-30-14-05-09-x')).to.equal(undefined);
    expect(parseObjectKey('s/2026/12/06/14/notes.txt')).to.equal(undefined);
    expect(parseObjectKey('s/2026/12/06/14/')).to.equal(undefined);
  });

  it('the hour span of [from, to] is its hours and one more on each side, as folder names', function () {
    const from = Date.UTC(2026, 11, 31, 23, 30);
    const to = Date.UTC(2027, 0, 1, 0, 10);
    expect(hourSpan(from, to)).to.deep.equal({ first: '2026/12/31/22/', last: '2027/01/01/01/' });
    expect(hourSpan(to, from)).to.equal(undefined);
    expect(hourPath(Date.UTC(2026, 0, 2, 3))).to.equal('2026/01/02/03/');
  });

  it('the hour span of any range stays within 4-digit years (from 0, to far in the future)', function () {
    expect(hourSpan(0, Date.UTC(2026, 0, 1))).to.deep.equal({
      first: '1969/12/31/23/',
      last: '2026/01/01/01/',
    });
    expect(hourSpan(-1e15, 8.64e15)).to.deep.equal({ first: '1000/01/01/00/', last: '9999/12/31/23/' });
    expect(hourSpan(8.64e15 - 1, 8.64e15)).to.equal(undefined);
    expect(() => hourSpan(0, Number.POSITIVE_INFINITY)).to.throw(RangeError);
    // The folders compare as strings in time order.
    const a = hourSpan(Date.UTC(2026, 8, 30, 9), Date.UTC(2026, 9, 1, 10))!;
    expect(a.first < a.last).to.equal(true);
  });

  it('an archive root is a directory or s3://bucket[/prefix]', function () {
    expect(parseArchiveRoot('/data/archive')).to.deep.equal({ kind: 'dir', path: '/data/archive' });
    expect(parseArchiveRoot('s3://my-bucket')).to.deep.equal({ kind: 's3', bucket: 'my-bucket', prefix: '' });
    expect(parseArchiveRoot('s3://my-bucket/')).to.deep.equal({
      kind: 's3',
      bucket: 'my-bucket',
      prefix: '',
    });
    expect(parseArchiveRoot('s3://my-bucket/raw/sbe/')).to.deep.equal({
      kind: 's3',
      bucket: 'my-bucket',
      prefix: 'raw/sbe/',
    });
    expect(() => parseArchiveRoot('s3://My_Bucket/x')).to.throw(
      '"s3://My_Bucket/x": "My_Bucket" is not an S3 bucket name',
    );
    expect(() => parseArchiveRoot('')).to.throw('the archive root is empty');
  });
});
