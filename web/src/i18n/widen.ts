/** The shape of a catalogue with its strings widened: every language must have every key of the English one. */
export type Widen<T> = { [K in keyof T]: T[K] extends string ? string : Widen<T[K]> };
