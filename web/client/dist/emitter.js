// A small typed event emitter: listeners are called in the order they were
// added, and one that throws does not stop the others or the client.
export class Emitter {
    listeners = new Map();
    /** Calls fn for every event of kind; returns a function that stops it. */
    on(kind, fn) {
        let set = this.listeners.get(kind);
        if (!set) {
            set = new Set();
            this.listeners.set(kind, set);
        }
        set.add(fn);
        return () => {
            set.delete(fn);
        };
    }
    emit(kind, event) {
        const set = this.listeners.get(kind);
        if (!set)
            return;
        for (const fn of [...set]) {
            try {
                fn(event);
            }
            catch (err) {
                // Report it where it will be seen, without unwinding the client.
                queueMicrotask(() => {
                    throw err;
                });
            }
        }
    }
}
