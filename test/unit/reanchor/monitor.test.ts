import { expect } from 'chai';
import { monitorDecision, type BookObservation, type ProgressMemory } from '../../../src/reanchor/monitor';

const STALE_MS = 30_000;
const T0 = 1_700_000_000_000;

function observation(overrides: Partial<BookObservation> = {}): BookObservation {
  return { status: 'in_sync', reason: '', progress: '10/10/10', reanchorRunning: false, ...overrides };
}

describe('reanchor/monitorDecision', () => {
  it('no book state yet: nothing requested and nothing remembered', () => {
    const remembered: ProgressMemory = { progress: '1//', changedMs: T0 - 10 * STALE_MS };
    for (const memory of [undefined, remembered]) {
      const decision = monitorDecision(
        observation({ status: undefined, reason: 'gap' }),
        memory,
        T0,
        STALE_MS,
      );
      expect(decision).to.deep.equal({ reason: undefined, memory: undefined });
    }
  });

  it('open trade gaps: trade_gap (a repair), after out of sync and stale, never while a re-anchor runs', () => {
    const memory: ProgressMemory = { progress: '10/10/10', changedMs: T0 };
    expect(monitorDecision(observation({ openTradeGaps: true }), memory, T0 + 1, STALE_MS).reason).to.equal(
      'trade_gap',
    );
    expect(
      monitorDecision(
        observation({ openTradeGaps: true, status: 'out_of_sync', reason: 'gap' }),
        memory,
        T0,
        STALE_MS,
      ).reason,
    ).to.equal('out_of_sync:gap');
    expect(
      monitorDecision(observation({ openTradeGaps: true }), memory, T0 + STALE_MS, STALE_MS).reason,
    ).to.equal('stale');
    expect(
      monitorDecision(observation({ openTradeGaps: true, reanchorRunning: true }), memory, T0, STALE_MS)
        .reason,
    ).to.equal(undefined);
    expect(monitorDecision(observation({ openTradeGaps: false }), memory, T0 + 1, STALE_MS).reason).to.equal(
      undefined,
    );
    // No book data at all: the trades alone.
    expect(
      monitorDecision(observation({ status: undefined, openTradeGaps: true }), undefined, T0, STALE_MS),
    ).to.deep.equal({
      reason: 'trade_gap',
      memory: undefined,
    });
    expect(
      monitorDecision(
        observation({ status: undefined, openTradeGaps: true, reanchorRunning: true }),
        undefined,
        T0,
        STALE_MS,
      ).reason,
    ).to.equal(undefined);
  });

  it('the first observation of an in-sync book starts the clock and requests nothing', () => {
    const decision = monitorDecision(observation(), undefined, T0, STALE_MS);
    expect(decision).to.deep.equal({ reason: undefined, memory: { progress: '10/10/10', changedMs: T0 } });
  });

  it('out of sync: out_of_sync:<reason>, also on the first observation', () => {
    for (const reason of ['gap', 'crossed', 'no_snapshot']) {
      const decision = monitorDecision(
        observation({ status: 'out_of_sync', reason }),
        undefined,
        T0,
        STALE_MS,
      );
      expect(decision.reason).to.equal(`out_of_sync:${reason}`);
      expect(decision.memory).to.deep.equal({ progress: '10/10/10', changedMs: T0 });
    }
  });

  it('out of sync without a reason: out_of_sync:unknown', () => {
    const decision = monitorDecision(
      observation({ status: 'out_of_sync', reason: '' }),
      undefined,
      T0,
      STALE_MS,
    );
    expect(decision.reason).to.equal('out_of_sync:unknown');
  });

  it('out of sync is requested on every call while it lasts (the caller throttles), even while data flows', () => {
    let memory: ProgressMemory | undefined;
    for (let i = 0; i < 3; i++) {
      const decision = monitorDecision(
        observation({ status: 'out_of_sync', reason: 'gap', progress: `${i}//` }),
        memory,
        T0 + i * 1000,
        STALE_MS,
      );
      expect(decision.reason).to.equal('out_of_sync:gap');
      memory = decision.memory;
    }
  });

  it('nothing while the re-anchor runs, out of sync or stale, but the progress is still tracked', () => {
    const old: ProgressMemory = { progress: 'a', changedMs: T0 };
    const running = (o: Partial<BookObservation>, now: number) =>
      monitorDecision(observation({ reanchorRunning: true, progress: 'a', ...o }), old, now, STALE_MS);

    expect(running({ status: 'out_of_sync', reason: 'gap' }, T0 + 1).reason).to.equal(undefined);
    const stale = running({}, T0 + 10 * STALE_MS);
    expect(stale.reason).to.equal(undefined);
    expect(stale.memory).to.equal(old);
    const moved = running({ progress: 'b' }, T0 + 10 * STALE_MS);
    expect(moved).to.deep.equal({
      reason: undefined,
      memory: { progress: 'b', changedMs: T0 + 10 * STALE_MS },
    });
  });

  it('stale once staleAfterMs passed without progress, not before', () => {
    const memory: ProgressMemory = { progress: '10/10/10', changedMs: T0 };
    expect(monitorDecision(observation(), memory, T0 + STALE_MS - 1, STALE_MS)).to.deep.equal({
      reason: undefined,
      memory,
    });
    expect(monitorDecision(observation(), memory, T0 + STALE_MS, STALE_MS)).to.deep.equal({
      reason: 'stale',
      memory,
    });
    expect(monitorDecision(observation(), memory, T0 + 5 * STALE_MS, STALE_MS).reason).to.equal('stale');
  });

  it('keeps the same memory object while nothing changes (the clock is not reset by observing)', () => {
    let memory = monitorDecision(observation(), undefined, T0, STALE_MS).memory;
    for (let t = T0 + 1000; t < T0 + STALE_MS; t += 1000) {
      const decision = monitorDecision(observation(), memory, t, STALE_MS);
      expect(decision.reason).to.equal(undefined);
      expect(decision.memory).to.equal(memory);
      memory = decision.memory;
    }
    expect(monitorDecision(observation(), memory, T0 + STALE_MS, STALE_MS).reason).to.equal('stale');
  });

  it('progress resets the clock', () => {
    const memory: ProgressMemory = { progress: '10/10/10', changedMs: T0 };
    const moved = monitorDecision(
      observation({ progress: '11/11/11' }),
      memory,
      T0 + STALE_MS + 5_000,
      STALE_MS,
    );
    expect(moved).to.deep.equal({
      reason: undefined,
      memory: { progress: '11/11/11', changedMs: T0 + STALE_MS + 5_000 },
    });
    const later = T0 + STALE_MS + 5_000 + STALE_MS - 1;
    expect(
      monitorDecision(observation({ progress: '11/11/11' }), moved.memory, later, STALE_MS).reason,
    ).to.equal(undefined);
    expect(
      monitorDecision(observation({ progress: '11/11/11' }), moved.memory, later + 1, STALE_MS).reason,
    ).to.equal('stale');
  });

  it('does not mutate the memory it is given', () => {
    const memory: ProgressMemory = { progress: 'old', changedMs: T0 };
    monitorDecision(observation({ progress: 'new' }), memory, T0 + 1, STALE_MS);
    expect(memory).to.deep.equal({ progress: 'old', changedMs: T0 });
  });

  it('a book losing its state forgets the clock: it restarts when the state comes back', () => {
    let memory = monitorDecision(observation(), undefined, T0, STALE_MS).memory;
    memory = monitorDecision(observation({ status: undefined }), memory, T0 + STALE_MS, STALE_MS).memory;
    expect(memory).to.equal(undefined);
    const back = monitorDecision(observation(), memory, T0 + 2 * STALE_MS, STALE_MS);
    expect(back).to.deep.equal({
      reason: undefined,
      memory: { progress: '10/10/10', changedMs: T0 + 2 * STALE_MS },
    });
  });
});
