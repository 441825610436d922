/** A small typed event emitter: one events map per object, as LiveKit's client does. */
export class TypedEmitter<Events extends Record<string, unknown[]>> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- listeners of different events live in one map
  private readonly listeners = new Map<keyof Events, Set<(...args: any[]) => void>>();

  on<E extends keyof Events>(event: E, listener: (...args: Events[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  protected emit<E extends keyof Events>(event: E, ...args: Events[E]): void {
    for (const listener of this.listeners.get(event) ?? []) listener(...args);
  }

  removeAllListeners(): void {
    this.listeners.clear();
  }
}
