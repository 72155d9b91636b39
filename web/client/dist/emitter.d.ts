type Listener<T> = (event: T) => void;
export declare class Emitter<Events> {
    private listeners;
    /** Calls fn for every event of kind; returns a function that stops it. */
    on<K extends keyof Events>(kind: K, fn: Listener<Events[K]>): () => void;
    protected emit<K extends keyof Events>(kind: K, event: Events[K]): void;
}
export {};
