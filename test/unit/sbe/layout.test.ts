// The layout tables the codec reads by must agree with the schema we ship (src/sbe/stream_1_0.xml), which must be
// the published one. The XML is parsed with regexes: it is small, fixed and only needs names, ids and sizes.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { LAYOUTS, SCHEMA_ID, SCHEMA_VERSION, TemplateId } from '../../../src/sbe';
import type { FieldLayout } from '../../../src/sbe';
import { repoRoot, sharedDir } from '../../helpers/paths';

const shippedXml = fs.readFileSync(path.join(repoRoot, 'src/sbe/stream_1_0.xml'), 'utf8');

const PRIMITIVE_SIZE: Record<string, number> = {
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
};

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1];
}

function mustAttr(tag: string, name: string): string {
  const v = attr(tag, name);
  if (v === undefined) throw new Error(`no ${name} in ${tag}`);
  return v;
}

function primitiveSize(p: string): number {
  const n = PRIMITIVE_SIZE[p];
  if (n === undefined) throw new Error(`unknown primitive ${p}`);
  return n;
}

/** Size of each named type: simple types, enums (their encodingType) and composites (sum of their parts). */
function typeSizes(xml: string): Map<string, number> {
  const sizes = new Map<string, number>();
  const body = xml.replace(/<composite[\s\S]*?<\/composite>/g, (c) => {
    const name = mustAttr(c, 'name');
    let size = 0;
    for (const t of c.match(/<type\b[^>]*>/g) ?? []) {
      if (attr(t, 'length') !== '0') size += primitiveSize(mustAttr(t, 'primitiveType'));
    }
    sizes.set(name, size);
    return '';
  });
  for (const t of body.match(/<type\b[^>]*?\/?>/g) ?? [])
    sizes.set(mustAttr(t, 'name'), primitiveSize(mustAttr(t, 'primitiveType')));
  for (const e of body.match(/<enum\b[^>]*>/g) ?? [])
    sizes.set(mustAttr(e, 'name'), primitiveSize(mustAttr(e, 'encodingType')));
  return sizes;
}

interface XmlField {
  name: string;
  id: number;
  size: number;
  constant: boolean;
}

function xmlFields(block: string, sizes: Map<string, number>): XmlField[] {
  return (block.match(/<field\b[^>]*>/g) ?? []).map((f) => {
    const constant = attr(f, 'presence') === 'constant';
    const size = sizes.get(mustAttr(f, 'type'));
    if (size === undefined) throw new Error(`unknown type in ${f}`);
    return { name: mustAttr(f, 'name'), id: Number(mustAttr(f, 'id')), size: constant ? 0 : size, constant };
  });
}

function ours(fs: readonly FieldLayout[]): XmlField[] {
  return fs.map((f) => ({ name: f.name, id: f.id, size: f.size, constant: f.constant === true }));
}

function offsetsAreCumulative(fs: readonly FieldLayout[]): void {
  let offset = 0;
  for (const f of fs) {
    expect(f.offset, f.name).to.equal(offset);
    offset += f.size;
  }
}

describe('sbe layout vs stream_1_0.xml', () => {
  const sizes = typeSizes(shippedXml);

  it('the shipped schema is the published one', () => {
    const published = fs.readFileSync(path.join(sharedDir, 'reference/binance-sbe/stream_1_0.xml'), 'utf8');
    expect(shippedXml).to.equal(published);
  });

  it('schema id, version, little-endian, header and group header sizes', () => {
    const schemaTag = /<sbe:messageSchema\b[^>]*>/.exec(shippedXml)?.[0] ?? '';
    expect(Number(attr(schemaTag, 'id'))).to.equal(SCHEMA_ID);
    expect(Number(attr(schemaTag, 'version'))).to.equal(SCHEMA_VERSION);
    expect(attr(schemaTag, 'byteOrder')).to.equal('littleEndian');
    expect(sizes.get('messageHeader')).to.equal(8);
    expect(sizes.get('groupSizeEncoding')).to.equal(6);
    expect(sizes.get('groupSize16Encoding')).to.equal(4);
  });

  const messages = shippedXml.match(/<sbe:message\b[\s\S]*?<\/sbe:message>/g) ?? [];

  it('has exactly our four messages', () => {
    expect(messages.map((m) => mustAttr(m, 'name')).sort()).to.deep.equal(Object.keys(LAYOUTS).sort());
  });

  for (const m of messages) {
    const name = mustAttr(m, 'name') as keyof typeof LAYOUTS;
    it(`${name}: template id, root fields, block length, groups and symbol`, () => {
      const layout = LAYOUTS[name];
      expect(layout, name).to.not.equal(undefined);
      expect(Number(mustAttr(m, 'id')))
        .to.equal(layout.templateId)
        .and.equal(TemplateId[name]);

      const groups = m.match(/<group\b[\s\S]*?<\/group>/g) ?? [];
      const root = m.replace(/<group\b[\s\S]*?<\/group>/g, '');
      const rootFields = xmlFields(root, sizes);
      expect(ours(layout.fields)).to.deep.equal(rootFields);
      offsetsAreCumulative(layout.fields);
      expect(layout.blockLength).to.equal(rootFields.reduce((n, f) => n + f.size, 0));
      expect(layout.blockLength).to.equal(
        {
          TradesStreamEvent: 18,
          BestBidAskStreamEvent: 50,
          DepthSnapshotStreamEvent: 18,
          DepthDiffStreamEvent: 26,
        }[name],
      );

      expect(layout.groups.map((g) => g.name)).to.deep.equal(groups.map((g) => mustAttr(g, 'name')));
      groups.forEach((g, i) => {
        const ourGroup = layout.groups[i]!;
        const gFields = xmlFields(g, sizes);
        expect(ourGroup.id).to.equal(Number(mustAttr(g, 'id')));
        expect(ourGroup.headerLength).to.equal(sizes.get(attr(g, 'dimensionType') ?? 'groupSizeEncoding'));
        expect(ours(ourGroup.fields)).to.deep.equal(gFields);
        offsetsAreCumulative(ourGroup.fields);
        expect(ourGroup.blockLength).to.equal(gFields.reduce((n, f) => n + f.size, 0));
        expect(ourGroup.blockLength).to.equal(name === 'TradesStreamEvent' ? 25 : 16);
      });

      const data = m.match(/<data\b[^>]*>/g) ?? [];
      expect(data).to.have.length(1);
      expect(mustAttr(data[0]!, 'name')).to.equal(layout.data.name);
      expect(Number(mustAttr(data[0]!, 'id'))).to.equal(layout.data.id);
      expect(mustAttr(data[0]!, 'type')).to.equal('varString8');
      // The data field comes after every group, as the decoder walks it.
      expect(m.lastIndexOf('<group')).to.be.lessThan(m.indexOf('<data'));
    });
  }
});
