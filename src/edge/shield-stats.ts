import type { BanStore } from './ban-store.js';
import type { Family } from './attack-rules.js';

/** What a refusal is counted under: the attack family that decided it, or a ban. */
export type BlockKind = Family | 'banned';

/** Every family, so /metrics shows a zero series for each from the start (alerts need one). */
export const BLOCK_KINDS: readonly BlockKind[] = ['protocol', 'scanner', 'sqli', 'xss', 'lfi', 'rfi', 'rce', 'php', 'java', 'injection', 'session-fixation', 'positive-model', 'banned'];

/**
 * The shield's refusals since the node started, by family, for `telesalud_shield_blocks_total`.
 * Counted once per refused request or WebSocket message, under the family that weighed most.
 * Plain counts in memory: the shield's hot path pays an increment, /metrics reads them.
 */
export class ShieldStats {
  private readonly blocks = new Map<BlockKind, number>(BLOCK_KINDS.map((k) => [k, 0]));

  constructor(private readonly bans: BanStore) {}

  count(kind: BlockKind): void {
    this.blocks.set(kind, (this.blocks.get(kind) ?? 0) + 1);
  }

  /** Refusals so far, by family. */
  byFamily(): ReadonlyMap<BlockKind, number> {
    return this.blocks;
  }

  /** Sources banned right now, when the ban store can tell. */
  activeBans(): Promise<number | undefined> {
    return this.bans.activeBans ? this.bans.activeBans() : Promise.resolve(undefined);
  }
}
