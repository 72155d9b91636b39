// A small typed event emitter: listeners are called in the order they were
// added, and one that throws does not stop the others or the client.

type Listener<T> = (event: T) => void;

export class Emitter<Events> {
  private listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Calls fn for every event of kind; returns a function that stops it. */
  on<K extends keyof Events>(kind: K, fn: Listener<Events[K]>): () => void {
    let set = this.listeners.get(kind);
    if (!set) {
      set = new Set();
      this.listeners.set(kind, set);
    }
    set.add(fn as Listener<never>);
    return () => {
      set.delete(fn as Listener<never>);
    };
  }

  protected emit<K extends keyof Events>(kind: K, event: Events[K]): void {
    const set = this.listeners.get(kind);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<Events[K]>)(event);
      } catch (err) {
        // Report it where it will be seen, without unwinding the client.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
